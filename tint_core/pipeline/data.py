"""Data steps: index a dataset, draw one episode, index a folder of supports.

A dataset index lists every image (path relative to the dataset root, class, split, size in bytes); an episode
records the content digest of each support and query, so keys downstream depend on image content, never on where
the files live. Nothing here decodes an image except to load it for a step that needs the pixels.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
from collections.abc import Sequence

import fsspec
import pyarrow as pa
import torch
from pydantic import BaseModel, ConfigDict, Field

from tint_core.data.datasets import IMAGE_SUFFIXES, FewShotDataset, ImageRecord, check_class_name, load_images
from tint_core.data.digits import DEFAULT_BASE, DEFAULT_NOVEL, DIGITS_PER_CLASS, write_digits_dataset
from tint_core.data.episodes import EpisodeSampler
from tint_core.images import load_image
from tint_core.pipeline.config import DIGITS, DatasetConfig, EpisodeConfig
from tint_core.pipeline.resources import open_store
from tint_core.pipeline.step import Output, Step
from tint_core.store import ArtifactRef, ArtifactStore, canonical_json, normalize_path, out_of_space, sha256_hex
from tint_core.store.errors import OUT_OF_SPACE

logger = logging.getLogger("tint_core.pipeline")

DATASET = Step("dataset", 1)
EPISODE = Step("episode", 1)
SUPPORTS = Step("supports", 1)
DIGITS_COMPLETE = "_COMPLETE"  # written last into the digits folder: the folder is whole iff it exists
ROLES = {"support": "supports", "query": "queries"}  # an image's role in the stored table → its EpisodeClass field


class ImageFile(BaseModel):
    """An image of an episode: its path relative to the dataset root and the SHA-256 of its bytes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    sha256: str


class EpisodeClass(BaseModel):
    """One class of an episode: its supports and queries (possibly none, as in the application)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    supports: list[ImageFile]
    queries: list[ImageFile] = Field(default_factory=list)

    @property
    def supports_digest(self) -> str:
        """Content digest of the ordered supports: what a class specialisation depends on."""
        return sha256_hex(canonical_json([image.sha256 for image in self.supports]).encode())


class EpisodeData(BaseModel):
    """An episode as the pipeline stores it; label = position in ``classes``. Supports may differ in number."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    root: str = Field(description="URL of the dataset root the paths are relative to")
    split: str | None = Field(description="split the classes come from (None for a folder of supports)")
    episode_id: int
    image_size: int | None = Field(description="side images are resized to on loading (None: keep their size)")
    classes: list[EpisodeClass]

    @property
    def class_names(self) -> list[str]:
        return [entry.name for entry in self.classes]

    def _paths(self, role: str) -> tuple[list[str], torch.Tensor]:
        paths, labels = [], []
        for label, entry in enumerate(self.classes):
            for image in getattr(entry, role):
                paths.append(image.path)
                labels.append(label)
        return paths, torch.tensor(labels, dtype=torch.long)

    def load(self, paths: Sequence[str]) -> torch.Tensor:
        """Images at root-relative ``paths`` as one (B, 3, H, W) batch, resized to ``image_size`` if set."""
        fs, root = fsspec.core.url_to_fs(self.root)
        return load_images([f"{root}/{path}" for path in paths], size=self.image_size, fs=fs)[0]

    def supports(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Support images (N·K, 3, H, W) and labels (N·K,), class-major."""
        paths, labels = self._paths("supports")
        return self.load(paths), labels

    def queries(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Query images (N·Q, 3, H, W) and labels (N·Q,), class-major."""
        paths, labels = self._paths("queries")
        if not paths:
            raise ValueError("this episode has no queries (a support folder cannot be scored)")
        return self.load(paths), labels

    def class_supports(self, index: int) -> list[torch.Tensor]:
        """One class's supports at their own size (the diffusion backbone prepares them itself)."""
        fs, root = fsspec.core.url_to_fs(self.root)
        return [load_image(fs.cat_file(f"{root}/{image.path}"), name=image.path)
                for image in self.classes[index].supports]  # fmt: skip

    def to_parts(self) -> dict[str, object]:
        """Artifact parts: ``images`` (Parquet, one row per image: role, label, class, path, sha256) and ``episode``
        (JSON: root, split, episode_id, image_size, class names)."""
        rows = [{"role": role, "label": label, "class": entry.name, "path": image.path, "sha256": image.sha256}
                for label, entry in enumerate(self.classes) for role, field in ROLES.items()
                for image in getattr(entry, field)]  # fmt: skip
        schema = pa.schema([("role", pa.string()), ("label", pa.int64()), ("class", pa.string()),
                            ("path", pa.string()), ("sha256", pa.string())])  # fmt: skip
        header = self.model_dump(mode="json", exclude={"classes"}) | {"classes": self.class_names}
        return {"images": pa.Table.from_pylist(rows, schema=schema), "episode": header}

    @classmethod
    def from_parts(cls, images: pa.Table, header: dict) -> EpisodeData:
        """Inverse of :meth:`to_parts`."""
        rows = images.to_pylist()
        classes = [
            EpisodeClass(name=name, **{
                field: [ImageFile(path=row["path"], sha256=row["sha256"]) for row in rows
                        if row["label"] == label and row["role"] == role]
                for role, field in ROLES.items()
            })
            for label, name in enumerate(header["classes"])
        ]  # fmt: skip
        return cls(**{**header, "classes": classes})


def load_episode(store: ArtifactStore, ref: ArtifactRef) -> EpisodeData:
    """The episode stored under ``ref``."""
    artifact = store.get(ref)
    return EpisodeData.from_parts(artifact["images"], artifact["episode"])


# 1. dataset index --------------------------------------------------------------------------------------------------


def dataset_root(store: ArtifactStore, config: DatasetConfig) -> str:
    """URL of the dataset's root: the source itself, or for the digits a folder inside the store."""
    if config.source == DIGITS:
        subset = "" if config.digits_per_class is None else f"-first{config.digits_per_class}"
        return f"{store.url}/datasets/digits-{config.digits_size}{subset}"
    return normalize_path(config.source)


def _listing(root: str) -> list[tuple[str, int]]:
    """(relative path, size) of every file under ``root``, sorted."""
    fs, path = fsspec.core.url_to_fs(root)
    path = path.rstrip("/")
    found = fs.find(path, detail=True)
    return sorted((name[len(path) + 1:], int(info.get("size") or 0)) for name, info in found.items()
                  if info.get("type", "file") == "file")  # fmt: skip


def _dataset_output(store: ArtifactStore, config: DatasetConfig) -> Output:
    root = dataset_root(store, config)
    if config.source == DIGITS:
        # Written by us from scikit-learn's data: the source, size and subset say everything about the content.
        params = {"source": DIGITS, "digits_size": config.digits_size, "root": root}
        if config.digits_per_class is not None:  # only then: the whole set keeps the key it always had
            params["digits_per_class"] = config.digits_per_class
    else:
        listing = canonical_json(_listing(root)).encode()
        params = {"source": root, "listing": sha256_hex(listing)}
    return DATASET.output(params)


def dataset_keys(store: str, dataset: DatasetConfig) -> list[str]:
    """Key of the dataset index (a folder listing, or for the digits their size)."""
    opened = open_store(store)
    output = _dataset_output(opened, dataset)
    if dataset.source == DIGITS and not _digits_complete(dataset_root(opened, dataset)) and opened.exists(output.key):
        # The index outlived the images it lists: set it aside so that the step writes both again.
        opened.quarantine(output.key, "the digits folder it indexes is incomplete or gone")
    return [output.key]


def _digits_complete(root: str) -> bool:
    fs, path = fsspec.core.url_to_fs(root)
    return fs.exists(f"{path.rstrip('/')}/{DIGITS_COMPLETE}")


def index_dataset(store: str, dataset: DatasetConfig) -> ArtifactRef:
    """Index the dataset (writing the digits into the store first when they are the source).

    Returns:
        A reference to an artifact with parts ``images`` (table: path, class, split, size) and ``dataset``
        (JSON: root URL).
    """
    opened = open_store(store)
    root = dataset_root(opened, dataset)

    def compute() -> dict[str, object]:
        if dataset.source == DIGITS and not _digits_complete(root):
            logger.info("writing the bundled digits to %s", root)
            try:
                write_digits_dataset(root, size=dataset.digits_size, per_class=dataset.digits_per_class)
                fs, path = fsspec.core.url_to_fs(root)
                fs.pipe_file(f"{path.rstrip('/')}/{DIGITS_COMPLETE}", b"")
            except OSError as error:
                if error.errno in OUT_OF_SPACE:
                    raise out_of_space(opened.url, f"write the digits into {root}") from None
                raise
        records = FewShotDataset.from_image_folder(root).records
        sizes = dict(_listing(root))
        fs, base = fsspec.core.url_to_fs(root)
        relative = [record.path[len(base.rstrip("/")) + 1 :] for record in records]
        table = pa.table({
            "path": relative, "class": [record.label for record in records],
            "split": [record.split for record in records], "size": [sizes[path] for path in relative],
        })  # fmt: skip
        return {"images": table, "dataset": {"root": root}}

    return _dataset_output(opened, dataset).ensure(opened, compute)


def open_dataset(store: ArtifactStore, ref: ArtifactRef) -> FewShotDataset:
    """The indexed dataset, as a ``FewShotDataset`` (no image is read)."""
    artifact = store.get(ref)
    root = artifact["dataset"]["root"]
    fs, base = fsspec.core.url_to_fs(root)
    table = artifact["images"].to_pydict()
    records = [ImageRecord(path=f"{base.rstrip('/')}/{path}", label=label, split=split)
               for path, label, split in zip(table["path"], table["class"], table["split"], strict=True)]  # fmt: skip
    return FewShotDataset(records, fs)


def dataset_root_of(store: ArtifactStore, ref: ArtifactRef) -> str:
    """The root URL recorded in a dataset index."""
    return store.get(ref)["dataset"]["root"]


# 2. episodes -------------------------------------------------------------------------------------------------------


def _file_digests(fs: fsspec.AbstractFileSystem, paths: list[str]) -> list[str]:
    contents = fs.cat(paths, on_error="raise")
    return [hashlib.sha256(contents[path]).hexdigest() for path in paths]


def _episode_output(dataset: ArtifactRef, episodes: EpisodeConfig, episode_id: int, image_size: int | None) -> Output:
    params = {**episodes.model_dump(exclude={"episodes"}), "episode_id": episode_id, "image_size": image_size}
    return EPISODE.output(params, {"dataset": dataset})


def episode_keys(store: str, dataset: ArtifactRef, episodes: EpisodeConfig, episode_id: int,
                 image_size: int | None) -> list[str]:  # fmt: skip
    """Key of one episode: it depends on its own id, never on how many episodes are drawn."""
    return [_episode_output(dataset, episodes, episode_id, image_size).key]


def sample_episode(store: str, dataset: ArtifactRef, episodes: EpisodeConfig, episode_id: int,
                   image_size: int | None) -> ArtifactRef:  # fmt: skip
    """Draw episode ``episode_id`` and record the digest of every support and query.

    Returns:
        A reference to an artifact with parts ``images`` (Parquet) and ``episode`` (JSON); see
        :meth:`EpisodeData.to_parts`.
    """
    opened = open_store(store)

    def compute() -> dict[str, object]:
        data = open_dataset(opened, dataset)
        sampler = EpisodeSampler(data, episodes.split, episodes.n_way, episodes.k_shot, episodes.n_query,
                                 episodes.seed)  # fmt: skip
        episode = sampler.sample(episode_id)
        base = dataset_root_of(opened, dataset)
        _, root = fsspec.core.url_to_fs(base)
        prefix = root.rstrip("/") + "/"
        supports = _file_digests(data.fs, episode.support_paths)
        queries = _file_digests(data.fs, episode.query_paths)
        k, q = episode.k_shot, episode.n_query
        classes = [
            EpisodeClass(
                name=name,
                supports=[ImageFile(path=p.removeprefix(prefix), sha256=d) for p, d in
                          zip(episode.support_paths[i * k:(i + 1) * k], supports[i * k:(i + 1) * k], strict=True)],
                queries=[ImageFile(path=p.removeprefix(prefix), sha256=d) for p, d in
                         zip(episode.query_paths[i * q:(i + 1) * q], queries[i * q:(i + 1) * q], strict=True)],
            )
            for i, name in enumerate(episode.classes)
        ]  # fmt: skip
        record = EpisodeData(root=base, split=episode.split, episode_id=episode_id, image_size=image_size,
                             classes=classes)  # fmt: skip
        return record.to_parts()

    return _episode_output(dataset, episodes, episode_id, image_size).ensure(opened, compute)


def _root_prefix(episode: EpisodeData) -> str:
    """What a dataset path starts with before its root-relative part."""
    _, root = fsspec.core.url_to_fs(episode.root)
    return root.rstrip("/") + "/"


def real_pool(store: ArtifactStore, dataset: ArtifactRef, episode: EpisodeData) -> tuple[list[str], torch.Tensor]:
    """The episode's classes' images that are neither supports nor queries: root-relative paths and labels."""
    if episode.split is None:
        raise ValueError("a folder of supports has no pool of spare images")
    data = open_dataset(store, dataset)
    prefix = _root_prefix(episode)
    used = {image.path for entry in episode.classes for image in (*entry.supports, *entry.queries)}
    paths, labels = [], []
    for label, name in enumerate(episode.class_names):
        for path in data.paths(episode.split, name):
            if path.removeprefix(prefix) not in used:
                paths.append(path.removeprefix(prefix))
                labels.append(label)
    return paths, torch.tensor(labels, dtype=torch.long)


def base_pool(store: ArtifactStore, dataset: ArtifactRef, episode: EpisodeData, count: int, seed: int) -> list[str]:
    """``count`` root-relative paths of base-class images, drawn without replacement under ``seed``, sorted."""
    data = open_dataset(store, dataset)
    if "base" not in data.splits:
        raise ValueError(f"method 'base_pool' needs a base split; the dataset has {list(data.splits)}")
    paths = [path for name in data.classes("base") for path in data.paths("base", name)]
    if count > len(paths):
        raise ValueError(f"base_pool asks for {count} images, but the base split has {len(paths)}")
    chosen = torch.randperm(len(paths), generator=torch.Generator().manual_seed(seed))[:count]
    prefix = _root_prefix(episode)
    return [paths[index].removeprefix(prefix) for index in sorted(chosen.tolist())]


# 3. a folder of supports (the application) ------------------------------------------------------------------------


def _support_files(root: str) -> dict[str, list[tuple[str, int]]]:
    """Class name → (relative path, size) of its images, for every subfolder of ``root``."""
    by_class: dict[str, list[tuple[str, int]]] = {}
    for path, size in _listing(root):
        parts = path.split("/")
        name = parts[-1]
        if len(parts) == 2 and posixpath.splitext(name)[1].lower() in IMAGE_SUFFIXES and not name.startswith("."):
            by_class.setdefault(check_class_name(parts[0], root), []).append((path, size))
    return dict(sorted(by_class.items()))


def check_support_folder(folder: str) -> dict[str, int]:
    """Class name → number of support images; raises a one-line error for a missing or unusable folder."""
    root = normalize_path(folder)
    fs, path = fsspec.core.url_to_fs(root)
    if not fs.isdir(path):
        raise FileNotFoundError(f"support folder {folder} does not exist")
    by_class = _support_files(root)
    if len(by_class) < 2:
        raise ValueError(f"{folder} has {len(by_class)} class subfolder(s) with images; a classifier needs at least 2 "
                         f"(put each class's support images in {folder}/<class name>/)")  # fmt: skip
    return {name: len(files) for name, files in by_class.items()}


def _supports_output(folder: str, image_size: int | None) -> Output:
    root = normalize_path(folder)
    listing = sha256_hex(canonical_json(_support_files(root)).encode())
    return SUPPORTS.output({"root": root, "listing": listing, "image_size": image_size})


def support_set_keys(store: str, folder: str, image_size: int | None) -> list[str]:
    """Key of a support folder's index (its listing: paths and sizes)."""
    return [_supports_output(folder, image_size).key]


def index_support_set(store: str, folder: str, image_size: int | None) -> ArtifactRef:
    """Index a folder with one subfolder of support images per class as an episode without queries."""
    opened = open_store(store)
    root = normalize_path(folder)

    def compute() -> dict[str, object]:
        fs, base = fsspec.core.url_to_fs(root)
        base = base.rstrip("/")
        classes = []
        for name, files in _support_files(root).items():
            digests = _file_digests(fs, [f"{base}/{path}" for path, _ in files])
            classes.append(EpisodeClass(name=name, supports=[ImageFile(path=path, sha256=digest)
                                                             for (path, _), digest in zip(files, digests, strict=True)]))  # fmt: skip
        record = EpisodeData(root=root, split=None, episode_id=0, image_size=image_size, classes=classes)
        return record.to_parts()

    return _supports_output(folder, image_size).ensure(opened, compute)


def digits_class_counts(split: str, per_class: int | None = None) -> dict[str, int]:
    """Images per class of a split of the bundled digits, without writing them (base 0-4, novel 5-9), the first
    ``per_class`` of each digit only when given."""
    from tint_core.data.datasets import canonical_split

    digits = {"base": DEFAULT_BASE, "novel": DEFAULT_NOVEL}.get(canonical_split(split))
    if digits is None:
        raise ValueError(f"the bundled digits have no {canonical_split(split)!r} split; they have base and novel")
    return {str(digit): min(DIGITS_PER_CLASS[digit], per_class or DIGITS_PER_CLASS[digit]) for digit in digits}
