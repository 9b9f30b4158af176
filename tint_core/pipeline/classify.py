"""Classifier steps: prepare a backbone on the base classes, score the teacher, label unlabelled images, distil a
student, evaluate it.

Unlabelled images come either from generated image sets (one artifact per class, its label the class's position in
the episode) or from the episode's real pool (unused images of its classes, read from the dataset).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pyarrow as pa
import torch

from tint_core.evaluation.accuracy import episode_accuracy
from tint_core.fewshot.backbones import BackboneConfig, FeatureExtractor
from tint_core.fewshot.distill import train_student
from tint_core.fewshot.pretrain import PretrainConfig, pretrain_on_base
from tint_core.fewshot.run import adapt_teacher
from tint_core.fewshot.student import Student, student_description, student_from_state
from tint_core.fewshot.teacher import PrototypeTeacher, TeacherConfig
from tint_core.images import resize
from tint_core.pipeline.config import StudentSetup, TeacherSetup, generator_method
from tint_core.pipeline.data import EpisodeData, load_episode, open_dataset, real_pool
from tint_core.pipeline.resources import MODELS, config_identity, open_store, weights_file, weights_identity
from tint_core.pipeline.step import Output, Step
from tint_core.store import ArtifactRef, ArtifactStore

logger = logging.getLogger("tint_core.pipeline")

BACKBONE = Step("backbone", 1)
TEACHER_SCORE = Step("teacher_score", 1)
LABEL = Step("label", 1)
DISTILL = Step("distill", 1)
EVALUATE = Step("evaluate", 1)


def _backbone_params(backbone: BackboneConfig) -> dict[str, object]:
    """A backbone setting as it enters keys: the weights file by content, not by path."""
    return {**backbone.model_dump(exclude={"weights"}), "weights": weights_identity(backbone.weights)}


# 1. backbones prepared on the base classes ---------------------------------------------------------------------


def _backbone_output(dataset: ArtifactRef, backbone: BackboneConfig, pretrain: PretrainConfig | None,
                     centre: bool) -> Output:  # fmt: skip
    params = {"backbone": _backbone_params(backbone), "pretrain": pretrain, "centre": centre}
    return BACKBONE.output(params, {"dataset": dataset})


def backbone_keys(store: str, dataset: ArtifactRef, backbone: BackboneConfig, pretrain: PretrainConfig | None,
                  centre: bool) -> list[str]:  # fmt: skip
    """Key of a backbone prepared on the dataset's base split."""
    return [_backbone_output(dataset, backbone, pretrain, centre).key]


def prepare_backbone(store: str, dataset: ArtifactRef, backbone: BackboneConfig, pretrain: PretrainConfig | None,
                     centre: bool) -> ArtifactRef:  # fmt: skip
    """Pre-train a backbone on the base split (if ``pretrain``) and/or measure its mean base feature (if ``centre``).

    Returns:
        A reference to an artifact with parts ``weights`` (the trained backbone, when pre-trained), ``centre``
        ({"centre": (D,)}, when asked) and ``curves`` (JSON, when pre-trained).
    """
    if pretrain is None and not centre:
        raise ValueError("nothing to prepare: give a pre-training configuration or ask for the centre")
    opened = open_store(store)

    def compute() -> dict[str, object]:
        images, labels, _ = open_dataset(opened, dataset).load_split("base", size=backbone.input_size)
        extractor = FeatureExtractor.from_config(backbone)
        parts: dict[str, object] = {}
        if pretrain is not None:
            curves = pretrain_on_base(extractor, images, labels, pretrain)
            logger.info("pre-trained %s on %d base images: final loss %.4f", backbone.name, len(images),
                        curves.last("loss"))  # fmt: skip
            parts["weights"] = {name: value.detach().contiguous()
                                for name, value in extractor.backbone.state_dict().items()}  # fmt: skip
            parts["curves"] = curves.model_dump()
        if centre:
            parts["centre"] = {"centre": extractor.embed(images).mean(0)}
        return parts

    return _backbone_output(dataset, backbone, pretrain, centre).ensure(opened, compute)


def _backbone_from(store: ArtifactStore, backbone: BackboneConfig, prepared: ArtifactRef | None
                   ) -> tuple[BackboneConfig, torch.Tensor | None]:  # fmt: skip
    """The backbone setting with a prepared artifact's weights swapped in, and its centre (if any)."""
    if prepared is None:
        return backbone, None
    artifact = store.get(prepared)
    if "weights" in artifact.names:
        backbone = backbone.updated(weights=str(weights_file(store, prepared)))
    centre = artifact["centre"]["centre"] if "centre" in artifact.names else None
    return backbone, centre


def _extractor(backbone: BackboneConfig) -> FeatureExtractor:
    """A frozen feature extractor, loaded once per worker process (steps never change its weights)."""
    return MODELS.get(("features", config_identity(_backbone_params(backbone))),
                      lambda: FeatureExtractor.from_config(backbone))  # fmt: skip


def _teacher(store: ArtifactStore, setup: TeacherConfig, prepared: ArtifactRef | None, episode: EpisodeData
             ) -> PrototypeTeacher:  # fmt: skip
    """A teacher adapted to the episode's supports, over a shared (cached) backbone."""
    backbone, centre = _backbone_from(store, setup.backbone, prepared)
    teacher = PrototypeTeacher(_extractor(backbone), setup.scale, centre)
    supports, labels = episode.supports()
    return adapt_teacher(teacher, supports, labels, setup)


def _teacher_params(teacher: TeacherSetup, prepared: ArtifactRef | None) -> dict[str, object]:
    model = teacher.model.model_dump(exclude={"backbone"})
    return {"model": model, "backbone": _backbone_params(teacher.model.backbone) if prepared is None else
            teacher.model.backbone.model_dump(exclude={"weights"})}  # fmt: skip


def _prepared_inputs(prepared: ArtifactRef | None) -> dict[str, object]:
    return {} if prepared is None else {"backbone": prepared}


# 2. the teacher on the queries --------------------------------------------------------------------------------------


def _score_output(episode: ArtifactRef, teacher: TeacherSetup, prepared: ArtifactRef | None) -> Output:
    return TEACHER_SCORE.output(_teacher_params(teacher, prepared), {"episode": episode, **_prepared_inputs(prepared)})


def teacher_score_keys(store: str, episode: ArtifactRef, teacher: TeacherSetup,
                       prepared: ArtifactRef | None) -> list[str]:  # fmt: skip
    """Key of the teacher's query accuracy on one episode."""
    return [_score_output(episode, teacher, prepared).key]


def score_teacher(store: str, episode: ArtifactRef, teacher: TeacherSetup, prepared: ArtifactRef | None
                  ) -> ArtifactRef:  # fmt: skip
    """The teacher's accuracy on the episode's queries (JSON part ``score``: accuracy, n_query)."""
    opened = open_store(store)

    def compute() -> dict[str, object]:
        data = load_episode(opened, episode)
        model = _teacher(opened, teacher.model, prepared, data)
        queries, labels = data.queries()
        return {"score": {"accuracy": episode_accuracy(model(queries, teacher.model.batch_size), labels),
                          "n_query": len(labels)}}  # fmt: skip

    return _score_output(episode, teacher, prepared).ensure(opened, compute)


# 3. unlabelled images and their soft labels -------------------------------------------------------------------------


def _flat(images: Sequence[Sequence[ArtifactRef]] | None) -> list[ArtifactRef]:
    return [ref for unit in images or [] for ref in unit]


def _source_inputs(method: str, images: Sequence[Sequence[ArtifactRef]] | None,
                   dataset: ArtifactRef | None) -> dict[str, object]:  # fmt: skip
    """Input digests of a method's unlabelled images, with a check that the method got the source it needs."""
    if generator_method(method):
        if not images or dataset is not None:
            raise ValueError(f"method {method!r} takes generated image sets, not a dataset pool")
        return {f"images{index}": ref for index, ref in enumerate(_flat(images))}
    if method == "real_pool":
        if images or dataset is None:
            raise ValueError("method 'real_pool' takes the dataset (its spare images), not generated images")
        return {"dataset": dataset}
    if images or dataset is not None:
        raise ValueError(f"method {method!r} uses no unlabelled images")
    return {}


def unlabelled_images(store: ArtifactStore, episode: EpisodeData, images: Sequence[Sequence[ArtifactRef]] | None,
                      dataset: ArtifactRef | None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """A method's unlabelled images (M, 3, H, W) and each one's intended class (M,) in the episode.

    Generated images come back at the episode's image size (or the supports' size); the pool is loaded like the
    supports.
    """
    if dataset is not None:
        paths, labels = real_pool(store, dataset, episode)
        return episode.load(paths), labels
    batches, labels = [], []
    size = episode.image_size
    for ref in _flat(images):
        artifact = store.get(ref)
        name = artifact["meta"]["class_name"]
        if name not in episode.class_names:
            raise ValueError(f"image set {ref.key[:12]} is of class {name!r}, not a class of this episode")
        tensors = artifact["images"].tensors()
        batch = torch.stack([resize(image, size) for image in tensors]) if size else torch.stack(tensors)
        batches.append(batch)
        labels += [episode.class_names.index(name)] * len(batch)
    if sorted(set(labels)) != list(range(len(episode.classes))):
        raise ValueError("the image sets do not cover every class of the episode exactly")
    return torch.cat(batches), torch.tensor(labels, dtype=torch.long)


def _label_output(episode: ArtifactRef, method: str, images: Sequence[Sequence[ArtifactRef]] | None,
                  dataset: ArtifactRef | None, teacher: TeacherSetup, prepared: ArtifactRef | None) -> Output:  # fmt: skip
    inputs = {"episode": episode, **_prepared_inputs(prepared), **_source_inputs(method, images, dataset)}
    return LABEL.output({"method": method, "teacher": _teacher_params(teacher, prepared)}, inputs)


def label_keys(store: str, episode: ArtifactRef, method: str, images: list[list[ArtifactRef]] | None,
               dataset: ArtifactRef | None, teacher: TeacherSetup, prepared: ArtifactRef | None) -> list[str]:  # fmt: skip
    """Key of the teacher's soft labels for one method's unlabelled images of one episode."""
    return [_label_output(episode, method, images, dataset, teacher, prepared).key]


def label_images(store: str, episode: ArtifactRef, method: str, images: list[list[ArtifactRef]] | None,
                 dataset: ArtifactRef | None, teacher: TeacherSetup, prepared: ArtifactRef | None) -> ArtifactRef:  # fmt: skip
    """The adapted teacher's logits for every unlabelled image.

    Args:
        images: the generated image sets, per unit (for tint / ti_only); None for real_pool.
        dataset: the dataset index (for real_pool); None otherwise.
        prepared: the teacher's prepared backbone (pre-trained weights and/or centre), if any.

    Returns:
        A reference to an artifact with parts ``labels`` (table: intended class, logits) and ``summary`` (JSON:
        images, τ, fraction of images the teacher assigns to their intended class, overall and per class).
    """
    opened = open_store(store)

    def compute() -> dict[str, object]:
        data = load_episode(opened, episode)
        unlabelled, intended = unlabelled_images(opened, data, images, dataset)
        logits = _teacher(opened, teacher.model, prepared, data).soft_labels(unlabelled, teacher.model.batch_size)
        agree = logits.argmax(1) == intended
        per_class = {name: float(agree[intended == label].float().mean())
                     for label, name in enumerate(data.class_names)}  # fmt: skip
        table = pa.table({"intended": intended.tolist(), "logits": logits.tolist()})
        summary = {"images": len(intended), "scale": teacher.model.scale, "agreement": float(agree.float().mean()),
                   "agreement_per_class": per_class}  # fmt: skip
        return {"labels": table, "summary": summary}

    return _label_output(episode, method, images, dataset, teacher, prepared).ensure(opened, compute)


# 4. the student --------------------------------------------------------------------------------------------------


def _distill_output(episode: ArtifactRef, method: str, images: Sequence[Sequence[ArtifactRef]] | None,
                    labels: ArtifactRef | None, dataset: ArtifactRef | None, student: StudentSetup,
                    prepared: ArtifactRef | None) -> Output:  # fmt: skip
    if (labels is None) != (method == "supports_only"):
        raise ValueError(f"method {method!r}: soft labels are {'not ' if labels is None else ''}given, but "
                         f"{'every method but supports_only needs' if labels is None else 'supports_only takes'} them")  # fmt: skip
    backbone = student.model.backbone
    params = {
        "method": method, "head_scale": student.model.head_scale,
        "backbone": _backbone_params(backbone) if prepared is None else backbone.model_dump(exclude={"weights"}),
        "training": student.supports_only if method == "supports_only" else student.distill,
    }  # fmt: skip
    inputs = {"episode": episode, **_prepared_inputs(prepared), **_source_inputs(method, images, dataset)}
    if labels is not None:
        inputs["labels"] = labels
    return DISTILL.output(params, inputs)


def distill_keys(store: str, episode: ArtifactRef, method: str, images: list[list[ArtifactRef]] | None,
                 labels: ArtifactRef | None, dataset: ArtifactRef | None, student: StudentSetup,
                 prepared: ArtifactRef | None) -> list[str]:  # fmt: skip
    """Key of one method's student on one episode."""
    return [_distill_output(episode, method, images, labels, dataset, student, prepared).key]


def distill_student(store: str, episode: ArtifactRef, method: str, images: list[list[ArtifactRef]] | None,
                    labels: ArtifactRef | None, dataset: ArtifactRef | None, student: StudentSetup,
                    prepared: ArtifactRef | None) -> ArtifactRef:  # fmt: skip
    """Train the student on the supports plus, except for supports_only, the unlabelled images and their soft labels.

    Returns:
        A reference to an artifact with parts ``weights`` (the student's state dict), ``model`` (JSON: timm name and
        kwargs, input size, head scale, class names; see ``student_description``) and ``curves``.
    """
    opened = open_store(store)

    def compute() -> dict[str, object]:
        data = load_episode(opened, episode)
        supports, support_labels = data.supports()
        backbone, _ = _backbone_from(opened, student.model.backbone, prepared)
        config = student.model.updated(backbone=backbone)
        if labels is None:
            model, curves = train_student(config, supports, support_labels, student.supports_only)
        else:
            unlabelled, _ = unlabelled_images(opened, data, images, dataset)
            table = opened.get(labels)["labels"]
            logits = torch.tensor(table.column("logits").to_pylist(), dtype=torch.float32)
            model, curves = train_student(config, supports, support_labels, student.distill, unlabelled, logits)
        weights = {name: value.detach().contiguous() for name, value in model.state_dict().items()}
        return {"weights": weights, "model": student_description(model, config, data.class_names),
                "curves": curves.model_dump()}  # fmt: skip

    return _distill_output(episode, method, images, labels, dataset, student, prepared).ensure(opened, compute)


def load_distilled(store: ArtifactStore, ref: ArtifactRef) -> Student:
    """The student stored under ``ref``, ready for inference."""
    artifact = store.get(ref)
    return student_from_state(artifact["weights"], artifact["model"])


def _evaluate_output(episode: ArtifactRef, student: ArtifactRef) -> Output:
    return EVALUATE.output(None, {"episode": episode, "student": student})


def evaluate_keys(store: str, episode: ArtifactRef, student: ArtifactRef) -> list[str]:
    """Key of a student's score on an episode's queries."""
    return [_evaluate_output(episode, student).key]


def evaluate_student(store: str, episode: ArtifactRef, student: ArtifactRef) -> ArtifactRef:
    """A student's accuracy on the episode's queries (JSON part ``score``: accuracy, n_query)."""
    opened = open_store(store)

    def compute() -> dict[str, object]:
        data = load_episode(opened, episode)
        queries, labels = data.queries()
        return {"score": {"accuracy": episode_accuracy(load_distilled(opened, student).predict(queries), labels),
                          "n_query": len(labels)}}  # fmt: skip

    return _evaluate_output(episode, student).ensure(opened, compute)
