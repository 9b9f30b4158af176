"""The unlabelled images each method adds to its student's training, and the steps that make those not generated.

Every method but supports_only takes a list of artifacts, grouped per unit (``list[list[ArtifactRef]]``):

- generated image sets (ti_only, tint…, one per class: ``tint_core.pipeline.generation``);
- augmented copies of the supports (augmented_supports, one image set per class: :func:`augment_supports`);
- a pool of the dataset's real images (real_pool: the episode classes' unused images; base_pool: images of the base
  classes), listed by path (:func:`draw_pool`).

:func:`load_unlabelled` turns any of them into an image batch and each image's intended class in the episode
(``NO_CLASS`` for base images, made for no class of the episode).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import torch

from tint_core.evaluation.quality import NO_CLASS
from tint_core.images import resize
from tint_core.pipeline.config import AugmentedSupportsConfig
from tint_core.pipeline.data import EpisodeData, base_pool, load_episode, real_pool
from tint_core.pipeline.resources import open_store
from tint_core.pipeline.step import Output, Step
from tint_core.seeding import derive_seed
from tint_core.store import ArtifactRef, ArtifactStore, ImageSet

AUGMENT = Step("augment_supports", 1)
POOL = Step("pool", 1)
POOL_METHODS = ("real_pool", "base_pool")


def flat(images: Sequence[Sequence[ArtifactRef]] | None) -> list[ArtifactRef]:
    """The artifacts of every unit, in order."""
    return [ref for unit in images or [] for ref in unit]


def source_inputs(method: str, images: Sequence[Sequence[ArtifactRef]] | None) -> dict[str, object]:
    """Input digests of a method's unlabelled images, with a check that the method got some exactly when it needs
    them."""
    if method == "supports_only":
        if images:
            raise ValueError("method 'supports_only' uses no unlabelled images")
        return {}
    if not flat(images):
        raise ValueError(f"method {method!r} needs its unlabelled images (image sets or a pool)")
    return {f"images{index}": ref for index, ref in enumerate(flat(images))}


# 1. augmented copies of the supports ----------------------------------------------------------------------------


def _augment_outputs(store: ArtifactStore, episode: ArtifactRef, config: AugmentedSupportsConfig,
                     images_per_class: int) -> list[Output]:  # fmt: skip
    data = load_episode(store, episode)
    params = {"transforms": config.transforms, "seed": config.seed, "images_per_class": images_per_class,
              "image_size": data.image_size}  # fmt: skip
    return [AUGMENT.output({**params, "class_name": entry.name}, {"supports": entry.supports_digest})
            for entry in data.classes]  # fmt: skip


def augment_keys(store: str, episode: ArtifactRef, config: AugmentedSupportsConfig, images_per_class: int) -> list[str]:
    """Keys of an episode's augmented support sets (one per class: they depend on the class's supports only)."""
    return [output.key for output in _augment_outputs(open_store(store), episode, config, images_per_class)]


def augment_supports(store: str, episode: ArtifactRef, config: AugmentedSupportsConfig,
                     images_per_class: int) -> list[ArtifactRef]:  # fmt: skip
    """``images_per_class`` strongly augmented copies of each class's supports, seeded by (seed, the class's supports).

    Returns:
        One reference per class of the episode: parts ``images`` (ImageSet with column support, the index of each
        copy's support) and ``meta`` (JSON: class_name, method), the shape of a generated image set.
    """
    opened = open_store(store)
    data = load_episode(opened, episode)
    refs = []
    for label, output in enumerate(_augment_outputs(opened, episode, config, images_per_class)):
        entry = data.classes[label]

        def compute(label: int = label) -> dict[str, object]:
            from tint_core.fewshot.strong_augment import augmented_copies  # torchvision: only when augmenting

            supports, labels = data.supports()
            copies, source = augmented_copies(supports[labels == label], images_per_class, config.transforms,
                                              derive_seed(config.seed, entry.supports_digest))  # fmt: skip
            return {"images": ImageSet.from_tensors(copies, {"support": source.tolist()}),
                    "meta": {"class_name": entry.name, "method": "augmented_supports"}}  # fmt: skip

        refs.append(output.ensure(opened, compute))
    return refs


# 2. pools of real images ----------------------------------------------------------------------------------------


def _pool_output(dataset: ArtifactRef, episode: ArtifactRef, method: str, images_per_class: int | None,
                 seed: int) -> Output:  # fmt: skip
    if method not in POOL_METHODS:
        raise ValueError(f"method {method!r} draws no pool; pools: {', '.join(POOL_METHODS)}")
    if (images_per_class is None) != (method == "real_pool"):
        raise ValueError("real_pool takes every unused image (images_per_class None); base_pool takes M per class")
    params = {"method": method, "images_per_class": images_per_class, "seed": seed}
    return POOL.output(params, {"dataset": dataset, "episode": episode})


def pool_keys(store: str, dataset: ArtifactRef, episode: ArtifactRef, method: str, images_per_class: int | None,
              seed: int) -> list[str]:  # fmt: skip
    """Key of an episode's pool of real images."""
    return [_pool_output(dataset, episode, method, images_per_class, seed).key]


def draw_pool(store: str, dataset: ArtifactRef, episode: ArtifactRef, method: str, images_per_class: int | None,
              seed: int) -> list[ArtifactRef]:  # fmt: skip
    """List an episode's pool: for real_pool every image of its classes that is neither a support nor a query; for
    base_pool ``images_per_class`` × N images of the base classes, drawn under (seed, the episode).

    Returns:
        A one-element list (a pool is one artifact) of a reference with parts ``pool`` (table: path relative to the
        dataset root, intended class in the episode, ``NO_CLASS`` for base images) and ``meta`` (JSON: method).
    """
    opened = open_store(store)
    output = _pool_output(dataset, episode, method, images_per_class, seed)

    def compute() -> dict[str, object]:
        data = load_episode(opened, episode)
        if method == "real_pool":
            paths, labels = real_pool(opened, dataset, data)
            intended = labels.tolist()
        else:
            count = images_per_class * len(data.classes)
            paths = base_pool(opened, dataset, data, count, derive_seed(seed, "base_pool", episode.digest))
            intended = [NO_CLASS] * len(paths)
        return {"pool": pa.table({"path": paths, "intended": pa.array(intended, pa.int64())}),
                "meta": {"method": method}}  # fmt: skip

    return [output.ensure(opened, compute)]


# 3. any method's images, loaded --------------------------------------------------------------------------------


def load_unlabelled(store: ArtifactStore, episode: EpisodeData, images: Sequence[Sequence[ArtifactRef]]
                    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """A method's unlabelled images (M, 3, H, W) and each one's intended class (M,) in the episode (``NO_CLASS``
    for images made for no class).

    Image sets come back at the episode's image size (or as stored); pools are loaded like the supports.

    Raises:
        ValueError: an image set of a class not in the episode, or image sets that miss one of its classes.
    """
    batches, intended = [], []
    image_sets = False
    for ref in flat(images):
        artifact = store.get(ref)
        if "pool" in artifact.names:
            table = artifact["pool"]
            batches.append(episode.load(table.column("path").to_pylist()))
            intended += table.column("intended").to_pylist()
            continue
        image_sets = True
        name = artifact["meta"]["class_name"]
        if name not in episode.class_names:
            raise ValueError(f"image set {ref.key[:12]} is of class {name!r}, not a class of this episode")
        tensors = artifact["images"].tensors()
        size = episode.image_size
        batches.append(torch.stack([resize(image, size) for image in tensors]) if size else torch.stack(tensors))
        intended += [episode.class_names.index(name)] * len(tensors)
    if image_sets and sorted(set(intended)) != list(range(len(episode.classes))):
        raise ValueError("the image sets do not cover every class of the episode exactly")
    return torch.cat(batches), torch.tensor(intended, dtype=torch.long)
