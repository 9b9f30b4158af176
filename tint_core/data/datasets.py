"""Few-shot datasets with class splits, read from any fsspec URL.

Two layouts are accepted:

- ImageFolder tree: ``root/<split>/<class>/<image>`` with split folders ``base``, ``val``, ``novel`` (or the common
  aliases ``train`` → base, ``val``/``validation`` → val, ``test`` → novel).
- Parquet manifest with columns ``path``, ``class``, ``split``; relative paths are resolved against the manifest's
  folder, so a manifest and its images can move together.

Records hold paths native to the dataset's filesystem; nothing is decoded until :meth:`FewShotDataset.load`.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from tint_core.images import ImageReadError, load_image, resize

logger = logging.getLogger(__name__)

SPLITS = ("base", "val", "novel")
SPLIT_ALIASES = {
    "base": "base",
    "train": "base",
    "val": "val",
    "validation": "val",
    "novel": "novel",
    "test": "novel",
}
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
MANIFEST_COLUMNS = ("path", "class", "split")


def check_class_name(name: str, where: str) -> str:
    """``name`` if it can name a class: a label that is never a path (class names become file names, e.g. of the
    application's pictures). Raises ValueError for '', '.', '..', '/', '\\', control characters (NUL included) or
    more than 255 characters."""
    if (name in ("", ".", "..") or len(name) > 255 or "/" in name or "\\" in name
            or any(ord(character) < 32 for character in name)):  # fmt: skip
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise ValueError(f"{where}: class name {shown!r} cannot name a class (no '/', '\\', control characters, '.' "
                         "or '..'; at most 255 characters)")  # fmt: skip
    return name


def canonical_split(name: str) -> str:
    """Map a split name or alias (``train``, ``test``, …) to ``base``, ``val`` or ``novel``."""
    try:
        return SPLIT_ALIASES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown split {name!r}; expected one of {sorted(SPLIT_ALIASES)}") from None


@dataclass(frozen=True)
class ImageRecord:
    """One image: its path on the dataset's filesystem, its class name and its canonical split."""

    path: str
    label: str
    split: str


class FewShotDataset:
    """Labelled image records grouped by split and class, on one fsspec filesystem.

    Args:
        records: the images; ``split`` must be canonical (``base``, ``val`` or ``novel``).
        fs: the filesystem the record paths live on (local when omitted).
    """

    def __init__(self, records: Sequence[ImageRecord], fs: fsspec.AbstractFileSystem | None = None):
        for record in records:
            if record.split not in SPLITS:
                raise ValueError(f"{record.path}: split {record.split!r} is not one of {SPLITS}")
        self.records = list(records)
        self.fs = fs if fs is not None else fsspec.filesystem("file")
        self._index: dict[str, dict[str, list[str]]] = {}
        for record in sorted(self.records, key=lambda r: (r.split, r.label, r.path)):
            self._index.setdefault(record.split, {}).setdefault(record.label, []).append(record.path)

    # 1. constructors
    @classmethod
    def from_image_folder(cls, url: str, storage_options: dict | None = None) -> FewShotDataset:
        """Read an ImageFolder tree ``url/<split>/<class>/<image>``; other files and folders are ignored."""
        fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        root = root.rstrip("/")
        if not fs.isdir(root):
            raise FileNotFoundError(f"dataset folder {url} does not exist")
        split_dirs: dict[str, str] = {}
        for entry in sorted(fs.ls(root, detail=False)):
            name = posixpath.basename(entry.rstrip("/"))
            split = SPLIT_ALIASES.get(name.lower())
            if split is None or not fs.isdir(entry):
                continue
            if split in split_dirs:
                raise ValueError(f"{url}: folders {split_dirs[split]!r} and {name!r} both name the {split} split")
            split_dirs[split] = name
        if not split_dirs:
            raise ValueError(f"{url}: no split folder found; expected some of {sorted(SPLIT_ALIASES)}")
        records = []
        for split, name in split_dirs.items():
            split_root = f"{root}/{name}"
            for path in fs.find(split_root):
                parts = posixpath.relpath(path, split_root).split("/")
                suffix = posixpath.splitext(parts[-1])[1].lower()
                if len(parts) == 2 and suffix in IMAGE_SUFFIXES and not parts[-1].startswith("."):
                    records.append(ImageRecord(path=path, label=check_class_name(parts[0], url), split=split))
        if not records:
            raise ValueError(f"{url}: no images found under {sorted(split_dirs.values())}")
        return cls(records, fs)

    @classmethod
    def from_manifest(cls, url: str, storage_options: dict | None = None) -> FewShotDataset:
        """Read a Parquet manifest with columns ``path``, ``class``, ``split`` (split aliases allowed)."""
        fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
        with fs.open(path, "rb") as stream:
            table = pq.read_table(stream)
        missing = [column for column in MANIFEST_COLUMNS if column not in table.column_names]
        if missing:
            raise ValueError(f"manifest {url} lacks columns {missing}; it has {table.column_names}")
        folder = posixpath.dirname(path)
        columns = {name: table.column(name).to_pylist() for name in MANIFEST_COLUMNS}
        records = [
            ImageRecord(path=_resolve(fs, folder, str(p)), label=check_class_name(str(c), f"manifest {url}"),
                        split=canonical_split(str(s)))
            for p, c, s in zip(columns["path"], columns["class"], columns["split"], strict=True)
        ]
        return cls(records, fs)

    def to_manifest(self, url: str, storage_options: dict | None = None) -> None:
        """Write the records as a Parquet manifest; paths under the manifest's folder are stored relative to it."""
        fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
        folder = posixpath.dirname(path)
        stored = [
            posixpath.relpath(r.path, folder) if r.path.startswith(folder + "/") else self.fs.unstrip_protocol(r.path)
            for r in self.records
        ]
        table = pa.table(
            {"path": stored, "class": [r.label for r in self.records], "split": [r.split for r in self.records]}
        )
        with fs.open(path, "wb") as stream:
            pq.write_table(table, stream)

    # 2. queries (no image is decoded)
    @property
    def splits(self) -> tuple[str, ...]:
        """The canonical splits present, in ``base, val, novel`` order."""
        return tuple(split for split in SPLITS if split in self._index)

    def classes(self, split: str) -> list[str]:
        """Sorted class names of a split (aliases accepted)."""
        return sorted(self._split_index(split))

    def paths(self, split: str, label: str) -> list[str]:
        """Sorted image paths of one class of a split."""
        by_class = self._split_index(split)
        if label not in by_class:
            raise ValueError(f"class {label!r} is not in split {canonical_split(split)!r}; it has {sorted(by_class)}")
        return list(by_class[label])

    def class_counts(self, split: str) -> dict[str, int]:
        """Number of images per class of a split."""
        return {label: len(paths) for label, paths in sorted(self._split_index(split).items())}

    def _split_index(self, split: str) -> dict[str, list[str]]:
        split = canonical_split(split)
        if split not in self._index:
            raise ValueError(f"split {split!r} is absent; the dataset has {list(self.splits)}")
        return self._index[split]

    # 3. loading
    def load(
        self, paths: Sequence[str], size: int | None = None, skip_unreadable: bool = False
    ) -> tuple[torch.Tensor, list[str]]:
        """Decode images of this dataset; see :func:`load_images`."""
        return load_images(paths, size=size, fs=self.fs, skip_unreadable=skip_unreadable)

    def load_split(
        self, split: str, size: int | None = None, skip_unreadable: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """Decode a whole split.

        Returns:
            images (B, 3, size, size) in [0, 1], labels (B,) int64 indexing ``classes``, and ``classes``.
        """
        classes = self.classes(split)
        paths = [path for label in classes for path in self.paths(split, label)]
        label_of = {path: index for index, label in enumerate(classes) for path in self.paths(split, label)}
        images, kept = self.load(paths, size=size, skip_unreadable=skip_unreadable)
        return images, torch.tensor([label_of[path] for path in kept], dtype=torch.long), classes


def _resolve(fs: fsspec.AbstractFileSystem, folder: str, path: str) -> str:
    if "://" in path:
        return fs._strip_protocol(path)
    return path if path.startswith("/") else posixpath.normpath(posixpath.join(folder, path))


def load_images(
    paths: Sequence[str],
    size: int | None = None,
    fs: fsspec.AbstractFileSystem | None = None,
    skip_unreadable: bool = False,
) -> tuple[torch.Tensor, list[str]]:
    """Decode image files of any size and PIL mode into one RGB batch.

    Args:
        paths: paths on ``fs`` (local when omitted).
        size: square side to resize every image to (antialiased); ``None`` requires equal sizes.
        skip_unreadable: drop missing or corrupt files (each logged as a warning) instead of raising.

    Returns:
        images (B, 3, H, W) in [0, 1] and the B paths actually loaded, in input order.

    Raises:
        ImageReadError: a file is missing or not a decodable image (unless skipped); it names the path.
    """
    if not paths:
        raise ValueError("no image paths given")
    fs = fs if fs is not None else fsspec.filesystem("file")
    # One bulk read lets remote filesystems fetch concurrently.
    contents = fs.cat(list(paths), on_error="return")
    images, kept = [], []
    for path in paths:
        data = contents.get(path, contents.get(fs._strip_protocol(path)))
        try:
            if not isinstance(data, bytes):
                raise ImageReadError(path, f"cannot open: {data!r}")
            image = load_image(data, name=path)
        except ImageReadError as error:
            if not skip_unreadable:
                raise
            logger.warning("skipping unreadable image: %s", error)
            continue
        images.append(resize(image, size) if size is not None else image)
        kept.append(path)
    if not images:
        raise ValueError(f"none of the {len(paths)} images could be read")
    shapes = {tuple(image.shape) for image in images}
    if len(shapes) > 1:
        raise ValueError(f"images have different sizes {sorted(shapes)[:4]}…; pass size= to resize them")
    return torch.stack(images), kept
