"""Checks that run before any work: a bad configuration fails in one line, with nothing written to the store.

Order matters: everything that only reads (dataset listing, models available offline) comes first; the store is
opened and probed with a write last, so a bad dataset or model never creates the store's folder.
"""

from __future__ import annotations

from tint_core.data.datasets import FewShotDataset, ImageRecord, canonical_split
from tint_core.data.episodes import EpisodeSampler
from tint_core.diffusion.config import BackboneConfig as DiffusionBackboneConfig
from tint_core.fewshot.backbones import BackboneConfig, check_model_name
from tint_core.images import ImageReadError
from tint_core.pipeline.config import DIGITS, BenchmarkConfig, DistillAppConfig, TrainBackboneConfig
from tint_core.pipeline.data import check_support_folder, digits_class_counts
from tint_core.pipeline.resources import open_store, weights_identity
from tint_core.store import ArtifactStore, StoreError

# Errors that mean "the input or the environment is wrong": their message is the whole story, no traceback needed.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, ImageReadError, StoreError)


def split_counts(config: BenchmarkConfig, split: str) -> dict[str, int]:
    """Class name → images of ``split`` in the benchmark's dataset, found without decoding (or writing) any image.

    Raises:
        FileNotFoundError: the dataset folder does not exist.
        ValueError: the split is absent or not a split name.
    """
    if config.dataset.source == DIGITS:
        return digits_class_counts(split)
    dataset = FewShotDataset.from_image_folder(config.dataset.source)
    return dataset.class_counts(split)


def _check_episodes(config: BenchmarkConfig) -> None:
    episodes = config.episodes
    counts = split_counts(config, episodes.split)
    # The sampler's own checks, on stand-in records: no image is listed twice or read.
    split = canonical_split(episodes.split)
    records = [ImageRecord(f"{name}/{index}", name, split) for name, count in counts.items() for index in range(count)]
    EpisodeSampler(FewShotDataset(records), split, episodes.n_way, episodes.k_shot, episodes.n_query, episodes.seed)
    if "real_pool" in config.methods:
        need = episodes.k_shot + episodes.n_query
        spare = {name: count - need for name, count in counts.items()}
        if min(spare.values()) < 1:
            short = ", ".join(f"{name!r}" for name, extra in spare.items() if extra < 1)
            raise ValueError(f"method 'real_pool' needs spare images beyond K+Q = {need} in every class of split "
                             f"{split!r}, but {short} have none: drop real_pool from methods")  # fmt: skip


def max_queries(config: BenchmarkConfig) -> int:
    """The most queries per class every class of the split allows next to K supports."""
    return min(split_counts(config, config.episodes.split).values()) - config.episodes.k_shot


def _check_backbone(backbone: BackboneConfig, role: str, pretrained: bool) -> None:
    try:
        check_model_name(backbone.name)
        if not pretrained:
            weights_identity(backbone.weights)
    except (ValueError, FileNotFoundError) as error:
        raise type(error)(f"{role}: {error}") from None


def _check_store(url: str) -> ArtifactStore:
    store = open_store(url)
    store.check_writable()
    return store


def check_benchmark(config: BenchmarkConfig) -> None:
    """Raise a one-line error for anything that would make the benchmark fail later.

    Raises:
        FileNotFoundError: the dataset folder, or a weights file, does not exist.
        ValueError: the split has fewer than N classes, a class fewer than K + Q images, real_pool has no spare
            images, a model name is unknown.
        BackboneNotFoundError: the diffusion checkpoint is not available offline.
        StoreAccessError: the store cannot be reached or written.
    """
    _check_episodes(config)
    base_needed = config.teacher.pretrain is not None or config.student.pretrain is not None
    if (base_needed or config.teacher.centre_on_base) and not split_counts(config, "base"):
        raise ValueError("pre-training needs a base split, and the dataset's is empty")
    if config.needs_generator and config.execution.fan_out == "tasks":  # else the workers load it, not this machine
        _check_diffusion_backbone(config.generator.specialization.backbone)
    _check_backbone(config.teacher.model.backbone, "teacher", config.teacher.pretrain is not None)
    _check_backbone(config.student.model.backbone, "student", config.student.pretrain is not None)
    _check_store(config.store)


def _check_diffusion_backbone(backbone: DiffusionBackboneConfig) -> None:
    """Raise BackboneNotFoundError for a checkpoint that is not on this machine (nothing is loaded)."""
    from tint_core.diffusion.backbone import backbone_identity  # diffusers: imported when a run is checked

    backbone_identity(backbone.source, backbone.seed)


def check_distill_app(config: DistillAppConfig) -> dict[str, int]:
    """Raise a one-line error for a support folder, model or store the application cannot use.

    Returns:
        Class name → number of supports, in the order the pipeline labels them.
    """
    counts = check_support_folder(config.supports)
    _check_diffusion_backbone(config.generator.specialization.backbone)
    _check_backbone(config.teacher.backbone, "teacher", pretrained=False)
    _check_backbone(config.student.backbone, "student", pretrained=False)
    _check_store(config.store)
    return counts


def check_train_backbone(config: TrainBackboneConfig) -> None:
    """Raise a one-line error for a dataset without a usable base split, a missing image size, or a bad store."""
    counts = split_counts(BenchmarkConfig(dataset=config.dataset), "base")
    if len(counts) < 2:
        raise ValueError(f"the base split has {len(counts)} class(es); training a conditional model needs at least 2")
    config.image_size  # noqa: B018  (raises when the images' size is unknown)
    _check_store(config.store)
