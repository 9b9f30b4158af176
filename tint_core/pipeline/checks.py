"""Checks that run before any work: a bad configuration fails in one line, with nothing written to the store.

Order matters: everything that only reads (dataset listing, models available offline) comes first; the store is
opened and probed with a write last, so a bad dataset or model never creates the store's folder.
"""

from __future__ import annotations

from tint_core.data.datasets import FewShotDataset, ImageRecord, canonical_split
from tint_core.data.episodes import EpisodeSampler
from tint_core.devices import check_device
from tint_core.diffusion.config import BackboneConfig as DiffusionBackboneConfig
from tint_core.fewshot.config import BackboneConfig
from tint_core.fewshot.names import check_model_name
from tint_core.images import ImageReadError
from tint_core.pipeline.config import DIGITS, BenchmarkConfig, DatasetConfig, DistillAppConfig, TrainBackboneConfig
from tint_core.pipeline.data import check_support_folder, digits_class_counts
from tint_core.pipeline.resources import open_store, weights_identity
from tint_core.store import ArtifactStore, StoreError

# Errors that mean "the input or the environment is wrong": their message is the whole story, no traceback needed.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, ImageReadError, StoreError)


def split_counts(dataset: DatasetConfig, split: str) -> dict[str, int]:
    """Class name → images of ``split`` in the dataset, found without decoding (or writing) any image.

    Raises:
        FileNotFoundError: the dataset folder does not exist.
        ValueError: the split is absent or not a split name.
    """
    if dataset.source == DIGITS:
        return digits_class_counts(split, dataset.digits_per_class)
    return FewShotDataset.from_image_folder(dataset.source).class_counts(split)


def _check_episodes(config: BenchmarkConfig) -> None:
    episodes = config.episodes
    counts = split_counts(config.dataset, episodes.split)
    # The sampler's own checks, on stand-in records: no image is listed twice or read.
    split = canonical_split(episodes.split)
    records = [ImageRecord(f"{name}/{index}", name, split) for name, count in counts.items() for index in range(count)]
    EpisodeSampler(FewShotDataset(records), split, episodes.n_way, episodes.k_shot, episodes.n_query, episodes.seed)
    if "real_pool" in config.methods or config.measures_quality:
        # the image-set quality needs k + 1 spare images of each class for the radii of its k-NN manifold
        least = config.evaluation.quality_k + 1 if config.measures_quality else 1
        spare = {name: count - episodes.k_shot - episodes.n_query for name, count in counts.items()}
        short = ", ".join(repr(name) for name, extra in spare.items() if extra < least)
        if short:
            needs = [what for what, used in (("method 'real_pool'", "real_pool" in config.methods),
                                             ("the image-set quality", config.measures_quality)) if used]  # fmt: skip
            fixes = [fix for fix, used in (("drop real_pool from methods", "real_pool" in config.methods),
                                           ("set evaluation.quality_k to 0", config.measures_quality)) if used]  # fmt: skip
            raise ValueError(f"{' and '.join(needs)} need{'s' if len(needs) == 1 else ''} spare images beyond K+Q = "
                             f"{episodes.k_shot + episodes.n_query} in every class of split {split!r} (at least "
                             f"{least}), but {short} ha{'s' if short.count(',') == 0 else 've'} fewer: "
                             + " and ".join(fixes))  # fmt: skip
    if "base_pool" in config.methods:
        wanted = config.control_images("base_pool") * episodes.n_way
        base = sum(split_counts(config.dataset, "base").values())
        if base < wanted:
            raise ValueError(f"method 'base_pool' draws {wanted} base images per episode, but the base split has "
                             f"{base}: lower controls.base_pool.images_per_class or drop base_pool")  # fmt: skip


def _check_quality(config: BenchmarkConfig) -> None:
    """Each class's image set needs more images than the k of its k-NN manifold."""
    if not config.measures_quality:
        return
    k = config.evaluation.quality_k
    sizes = {}
    if config.needs_generator:
        sizes["generator.generation.images_per_class"] = config.generator.generation.images_per_class
    if "augmented_supports" in config.methods:
        sizes["controls.augmented_supports.images_per_class"] = config.control_images("augmented_supports")
    for name, size in sizes.items():
        if size <= k:
            raise ValueError(f"{name} = {size} is too few images per class for the image-set quality's k = {k} "
                             f"neighbours: use at least {k + 1}, or set evaluation.quality_k to 0")  # fmt: skip


def max_queries(config: BenchmarkConfig) -> int:
    """The most queries per class every class of the split allows next to K supports."""
    return min(split_counts(config.dataset, config.episodes.split).values()) - config.episodes.k_shot


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
        ValueError: the split has fewer than N classes, a class fewer than K + Q images, real_pool or the image-set
            quality has too few spare images, an image set is too small for the quality's k, base_pool asks for more
            base images than there are, a model name is unknown.
            A device this process would compute on is not on this machine (e.g. 'cuda' without a GPU).
        BackboneNotFoundError: the diffusion checkpoint is not available offline.
        StoreAccessError: the store cannot be reached or written.
    """
    _check_episodes(config)
    _check_quality(config)
    base_needed = config.teacher.pretrain is not None or config.student.pretrain is not None
    if (base_needed or config.teacher.centre_on_base) and not split_counts(config.dataset, "base"):
        raise ValueError("pre-training needs a base split, and the dataset's is empty")
    if config.needs_generator and config.execution.fan_out == "tasks":  # else the workers load it, not this machine
        _check_diffusion_backbone(config.generator.specialization.backbone)
    _check_backbone(config.teacher.model.backbone, "teacher", config.teacher.pretrain is not None)
    _check_backbone(config.student.model.backbone, "student", config.student.pretrain is not None)
    _check_devices(config)
    _check_store(config.store)


def _check_devices(config: BenchmarkConfig) -> None:
    """The devices of the work this process runs: units in tasks mode, the few-shot steps in tasks mode, and the
    backbones' preparation (always here). Workers check their own when their run starts."""
    execution, teacher, student = config.execution, config.teacher, config.student
    if config.needs_generator and execution.fan_out == "tasks":
        check_device(config.generator.specialization.backbone.device, "generator.specialization.backbone.device")
    fewshot_here = execution.fewshot_fan_out == "tasks"
    if fewshot_here or teacher.pretrain is not None or teacher.centre_on_base:
        check_device(teacher.model.compute.device, "teacher.model.compute.device")
    if fewshot_here or student.pretrain is not None:
        check_device(student.model.compute.device, "student.model.compute.device")


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
    if config.base is not None and not split_counts(config.base, "base"):
        raise ValueError("base: preparing the teacher and student needs a base split, and the dataset's is empty")
    _check_backbone(config.teacher.model.backbone, "teacher", config.teacher.pretrain is not None)
    _check_backbone(config.student.model.backbone, "student", config.student.pretrain is not None)
    check_device(config.generator.specialization.backbone.device, "generator.specialization.backbone.device")
    check_device(config.teacher.model.compute.device, "teacher.model.compute.device")
    check_device(config.student.model.compute.device, "student.model.compute.device")
    _check_store(config.store)
    return counts


def check_train_backbone(config: TrainBackboneConfig) -> None:
    """Raise a one-line error for a dataset without a usable base split, a missing image size, or a bad store."""
    counts = split_counts(config.dataset, "base")
    if len(counts) < 2:
        raise ValueError(f"the base split has {len(counts)} class(es); training a conditional model needs at least 2")
    config.image_size  # noqa: B018  (raises when the images' size is unknown)
    _check_store(config.store)
