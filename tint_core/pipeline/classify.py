"""Classifier steps: prepare a backbone on the base classes, score the teacher, label unlabelled images, measure how
they compare with real ones, distil a student, evaluate it.

Every method's student trains under one budget (``StudentSetup.training``); the methods differ only in the
unlabelled images they add (``tint_core.pipeline.unlabelled``). Each model computes on its ``compute`` setting's
device and precision; the precision enters the keys, the device does not (docs/gpu.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pyarrow as pa
import torch

from tint_core.devices import resolve_device
from tint_core.evaluation.accuracy import episode_accuracy
from tint_core.evaluation.quality import NO_CLASS, episode_quality
from tint_core.fewshot.backbones import FeatureExtractor
from tint_core.fewshot.config import BackboneConfig, ComputeConfig, PretrainConfig, TeacherConfig
from tint_core.fewshot.distill import train_student
from tint_core.fewshot.pretrain import pretrain_on_base
from tint_core.fewshot.run import adapt_teacher
from tint_core.fewshot.student import Student, student_description, student_from_state
from tint_core.fewshot.teacher import PrototypeTeacher
from tint_core.pipeline.config import FewShotUnit, StudentSetup, TeacherSetup
from tint_core.pipeline.data import EpisodeData, load_episode, open_dataset
from tint_core.pipeline.resources import MODELS, config_identity, open_store, weights_file, weights_identity
from tint_core.pipeline.step import Output, Step
from tint_core.pipeline.unlabelled import load_unlabelled, source_inputs
from tint_core.store import ArtifactRef, ArtifactStore

logger = logging.getLogger("tint_core.pipeline")

BACKBONE = Step("backbone", 1)
TEACHER_SCORE = Step("teacher_score", 1)
LABEL = Step("label", 2)  # 2: any method's images (pools as artifacts), no agreement for images of no class
DISTILL = Step("distill", 2)  # 2: one budget of steps for every method
EVALUATE = Step("evaluate", 1)
QUALITY = Step("quality", 1)


def _backbone_params(backbone: BackboneConfig) -> dict[str, object]:
    """A backbone setting as it enters keys: the weights file by content, not by path."""
    return {**backbone.model_dump(exclude={"weights"}), "weights": weights_identity(backbone.weights)}


# 1. backbones prepared on the base classes ---------------------------------------------------------------------


def _backbone_output(dataset: ArtifactRef, backbone: BackboneConfig, pretrain: PretrainConfig | None,
                     centre: bool, compute: ComputeConfig) -> Output:  # fmt: skip
    params = {"backbone": _backbone_params(backbone), "pretrain": pretrain, "centre": centre,
              "precision": compute.precision}  # fmt: skip
    return BACKBONE.output(params, {"dataset": dataset})


def backbone_keys(store: str, dataset: ArtifactRef, backbone: BackboneConfig, pretrain: PretrainConfig | None,
                  centre: bool, compute: ComputeConfig) -> list[str]:  # fmt: skip
    """Key of a backbone prepared on the dataset's base split."""
    return [_backbone_output(dataset, backbone, pretrain, centre, compute).key]


def prepare_backbone(store: str, dataset: ArtifactRef, backbone: BackboneConfig, pretrain: PretrainConfig | None,
                     centre: bool, compute: ComputeConfig) -> ArtifactRef:  # fmt: skip
    """Pre-train a backbone on the base split (if ``pretrain``) and/or measure its mean base feature (if ``centre``),
    on ``compute``'s device and precision.

    Returns:
        A reference to an artifact with parts ``weights`` (the trained backbone, when pre-trained), ``centre``
        ({"centre": (D,)}, when asked) and ``curves`` (JSON, when pre-trained).
    """
    if pretrain is None and not centre:
        raise ValueError("nothing to prepare: give a pre-training configuration or ask for the centre")
    opened = open_store(store)

    def compute_parts() -> dict[str, object]:
        images, labels, _ = open_dataset(opened, dataset).load_split("base", size=backbone.input_size)
        extractor = FeatureExtractor.from_config(backbone, compute)
        parts: dict[str, object] = {}
        if pretrain is not None:
            curves = pretrain_on_base(extractor, images, labels, pretrain)
            logger.info("pre-trained %s on %d base images: final loss %.4f", backbone.name, len(images),
                        curves.last("loss"))  # fmt: skip
            parts["weights"] = {name: value.detach().cpu().contiguous()
                                for name, value in extractor.backbone.state_dict().items()}  # fmt: skip
            parts["curves"] = curves.model_dump()
        if centre:
            parts["centre"] = {"centre": extractor.embed(images).mean(0)}
        return parts

    return _backbone_output(dataset, backbone, pretrain, centre, compute).ensure(opened, compute_parts)


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


def _extractor(backbone: BackboneConfig, compute: ComputeConfig) -> FeatureExtractor:
    """A frozen feature extractor on its device, loaded once per worker process (steps never change its weights)."""
    key = ("features", config_identity(_backbone_params(backbone)), str(resolve_device(compute.device)),
           compute.precision)  # fmt: skip
    return MODELS.get(key, lambda: FeatureExtractor.from_config(backbone, compute))


def adapted_teacher(store: ArtifactStore, setup: TeacherConfig, prepared: ArtifactRef | None, episode: EpisodeData
                    ) -> PrototypeTeacher:  # fmt: skip
    """A teacher adapted to the episode's supports, over a shared (cached) backbone."""
    backbone, centre = _backbone_from(store, setup.backbone, prepared)
    teacher = PrototypeTeacher(_extractor(backbone, setup.compute), setup.scale, centre)
    supports, labels = episode.supports()
    return adapt_teacher(teacher, supports, labels, setup)


def _teacher_params(teacher: TeacherSetup, prepared: ArtifactRef | None) -> dict[str, object]:
    model = teacher.model.model_dump(exclude={"backbone", "compute"})
    return {"model": model, "precision": teacher.model.compute.precision, "backbone": _backbone_params(teacher.model.backbone) if prepared is None else
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
        model = adapted_teacher(opened, teacher.model, prepared, data)
        queries, labels = data.queries()
        return {"score": {"accuracy": episode_accuracy(model(queries, teacher.model.batch_size), labels),
                          "n_query": len(labels)}}  # fmt: skip

    return _score_output(episode, teacher, prepared).ensure(opened, compute)


# 3. unlabelled images and their soft labels -------------------------------------------------------------------------


def _label_output(episode: ArtifactRef, method: str, images: Sequence[Sequence[ArtifactRef]] | None,
                  teacher: TeacherSetup, prepared: ArtifactRef | None) -> Output:  # fmt: skip
    inputs = {"episode": episode, **_prepared_inputs(prepared), **source_inputs(method, images)}
    return LABEL.output({"method": method, "teacher": _teacher_params(teacher, prepared)}, inputs)


def label_keys(store: str, episode: ArtifactRef, method: str, images: list[list[ArtifactRef]] | None,
               teacher: TeacherSetup, prepared: ArtifactRef | None) -> list[str]:  # fmt: skip
    """Key of the teacher's soft labels for one method's unlabelled images of one episode."""
    return [_label_output(episode, method, images, teacher, prepared).key]


def label_images(store: str, episode: ArtifactRef, method: str, images: list[list[ArtifactRef]] | None,
                 teacher: TeacherSetup, prepared: ArtifactRef | None) -> ArtifactRef:  # fmt: skip
    """The adapted teacher's logits for every unlabelled image.

    Args:
        images: the method's image sets or pool, per unit (``tint_core.pipeline.unlabelled``).
        prepared: the teacher's prepared backbone (pre-trained weights and/or centre), if any.

    Returns:
        A reference to an artifact with parts ``labels`` (table: intended class, logits) and ``summary`` (JSON:
        images, τ, fraction of images the teacher assigns to their intended class, overall and per class; None for
        images made for no class).
    """
    opened = open_store(store)

    def compute() -> dict[str, object]:
        data = load_episode(opened, episode)
        unlabelled, intended = load_unlabelled(opened, data, images)
        logits = adapted_teacher(opened, teacher.model, prepared, data).soft_labels(unlabelled, teacher.model.batch_size)
        agree = logits.argmax(1) == intended
        meant = intended != NO_CLASS
        per_class = {name: float(agree[intended == label].float().mean())
                     for label, name in enumerate(data.class_names) if bool((intended == label).any())}  # fmt: skip
        table = pa.table({"intended": intended.tolist(), "logits": logits.tolist()})
        summary = {"images": len(intended), "scale": teacher.model.scale,
                   "agreement": float(agree[meant].float().mean()) if bool(meant.any()) else None,
                   "agreement_per_class": per_class}  # fmt: skip
        return {"labels": table, "summary": summary}

    return _label_output(episode, method, images, teacher, prepared).ensure(opened, compute)


# 4. how the unlabelled images compare with real ones --------------------------------------------------------------


def _quality_output(episode: ArtifactRef, method: str, images: Sequence[Sequence[ArtifactRef]],
                    reference: Sequence[ArtifactRef], teacher: TeacherSetup, prepared: ArtifactRef | None,
                    k: int) -> Output:  # fmt: skip
    inputs = {"episode": episode, **{f"reference{index}": ref for index, ref in enumerate(reference)},
              **_prepared_inputs(prepared), **source_inputs(method, images)}  # fmt: skip
    return QUALITY.output({"k": k, "teacher": _teacher_params(teacher, prepared)}, inputs)


def quality_keys(store: str, episode: ArtifactRef, method: str, images: list[list[ArtifactRef]],
                 reference: list[ArtifactRef], teacher: TeacherSetup, prepared: ArtifactRef | None,
                 k: int) -> list[str]:  # fmt: skip
    """Key of the precision and recall of one method's unlabelled images on one episode."""
    return [_quality_output(episode, method, images, reference, teacher, prepared, k).key]


def measure_quality(store: str, episode: ArtifactRef, method: str, images: list[list[ArtifactRef]],
                    reference: list[ArtifactRef], teacher: TeacherSetup, prepared: ArtifactRef | None,
                    k: int) -> ArtifactRef:  # fmt: skip
    """Precision and recall (k-NN manifolds, ``tint_core.evaluation.quality``) of a method's unlabelled images
    against ``reference``, the episode classes' unused real images (the episode's real pool, as ``draw_pool``
    returns it), in the teacher's feature space (centred and normalised as the teacher compares images).

    Returns:
        A reference to an artifact with part ``quality`` (JSON: ``SetQuality``).
    """
    opened = open_store(store)

    def compute() -> dict[str, object]:
        data = load_episode(opened, episode)
        model = adapted_teacher(opened, teacher.model, prepared, data)
        real, real_labels = load_unlabelled(opened, data, [reference])
        made, intended = load_unlabelled(opened, data, images)
        features = model.features(torch.cat([real, made]), teacher.model.batch_size)  # (n + m, D)
        quality = episode_quality(features[: len(real)], real_labels, features[len(real) :], intended,
                                  data.class_names, k)  # fmt: skip
        return {"quality": quality.model_dump()}

    return _quality_output(episode, method, images, reference, teacher, prepared, k).ensure(opened, compute)


# 5. the student --------------------------------------------------------------------------------------------------


def _distill_output(episode: ArtifactRef, method: str, images: Sequence[Sequence[ArtifactRef]] | None,
                    labels: ArtifactRef | None, student: StudentSetup, prepared: ArtifactRef | None) -> Output:  # fmt: skip
    if (labels is None) != (method == "supports_only"):
        raise ValueError(f"method {method!r}: soft labels are {'not ' if labels is None else ''}given, but "
                         f"{'every method but supports_only needs' if labels is None else 'supports_only takes'} them")  # fmt: skip
    backbone = student.model.backbone
    params = {
        "method": method, "head_scale": student.model.head_scale, "precision": student.model.compute.precision,
        "backbone": _backbone_params(backbone) if prepared is None else backbone.model_dump(exclude={"weights"}),
        "training": student.training,
    }  # fmt: skip
    inputs = {"episode": episode, **_prepared_inputs(prepared), **source_inputs(method, images)}
    if labels is not None:
        inputs["labels"] = labels
    return DISTILL.output(params, inputs)


def distill_keys(store: str, episode: ArtifactRef, method: str, images: list[list[ArtifactRef]] | None,
                 labels: ArtifactRef | None, student: StudentSetup, prepared: ArtifactRef | None) -> list[str]:  # fmt: skip
    """Key of one method's student on one episode."""
    return [_distill_output(episode, method, images, labels, student, prepared).key]


def distill_student(store: str, episode: ArtifactRef, method: str, images: list[list[ArtifactRef]] | None,
                    labels: ArtifactRef | None, student: StudentSetup, prepared: ArtifactRef | None) -> ArtifactRef:  # fmt: skip
    """Train the student for ``student.training.steps`` steps on the supports plus, except for supports_only, the
    unlabelled images and their soft labels.

    Returns:
        A reference to an artifact with parts ``weights`` (the student's state dict), ``model`` (JSON: timm name and
        kwargs, input size, head scale, class names; see ``student_description``) and ``curves`` (JSON: per-step
        losses and the optimiser steps taken, see ``TrainingCurves``).
    """
    opened = open_store(store)

    def compute() -> dict[str, object]:
        data = load_episode(opened, episode)
        supports, support_labels = data.supports()
        backbone, _ = _backbone_from(opened, student.model.backbone, prepared)
        config = student.model.updated(backbone=backbone)
        unlabelled = logits = None
        if labels is not None:
            unlabelled, _ = load_unlabelled(opened, data, images)
            logits = torch.tensor(opened.get(labels)["labels"].column("logits").to_pylist(), dtype=torch.float32)
        model, curves = train_student(config, supports, support_labels, student.training, unlabelled, logits)
        weights = {name: value.detach().cpu().contiguous() for name, value in model.state_dict().items()}
        return {"weights": weights, "model": student_description(model, config, data.class_names),
                "curves": curves.model_dump()}  # fmt: skip

    return _distill_output(episode, method, images, labels, student, prepared).ensure(opened, compute)


def load_distilled(store: ArtifactStore, ref: ArtifactRef, device: str = "cpu") -> Student:
    """The student stored under ``ref`` (fp32 weights), ready for inference on ``device``."""
    artifact = store.get(ref)
    return student_from_state(artifact["weights"], artifact["model"]).to(resolve_device(device))


# 6. its score ------------------------------------------------------------------------------------------------------


def _evaluate_output(episode: ArtifactRef, student: ArtifactRef) -> Output:
    return EVALUATE.output(None, {"episode": episode, "student": student})


def evaluate_keys(store: str, episode: ArtifactRef, student: ArtifactRef, device: str = "cpu") -> list[str]:
    """Key of a student's score on an episode's queries."""
    return [_evaluate_output(episode, student).key]


def evaluate_student(store: str, episode: ArtifactRef, student: ArtifactRef, device: str = "cpu") -> ArtifactRef:
    """A student's accuracy on the episode's queries (JSON part ``score``: accuracy, n_query), computed in fp32 on
    ``device`` (not in the key)."""
    opened = open_store(store)

    def compute() -> dict[str, object]:
        data = load_episode(opened, episode)
        queries, labels = data.queries()
        return {"score": {"accuracy": episode_accuracy(load_distilled(opened, student, device).predict(queries), labels),
                          "n_query": len(labels)}}  # fmt: skip

    return _evaluate_output(episode, student).ensure(opened, compute)


# 7. an episode's few-shot work as one unit (a fewshot worker's run) -------------------------------------------------


def fewshot_keys(store: str, unit: FewShotUnit, teacher: TeacherSetup, student: StudentSetup,
                 teacher_backbone: ArtifactRef | None, student_backbone: ArtifactRef | None,
                 quality_k: int) -> list[str]:  # fmt: skip
    """Keys of an episode's few-shot steps known before any runs: the teacher's score, every method's labels and
    image-set quality, the supports-only student. (The other students' keys depend on their labels' digests, their
    scores' on the students'.)"""
    episode = unit.episode
    keys = [_score_output(episode, teacher, teacher_backbone).key]
    for method, images in unit.images.items():
        if method == "supports_only":
            keys.append(_distill_output(episode, method, images, None, student, student_backbone).key)
            continue
        keys.append(_label_output(episode, method, images, teacher, teacher_backbone).key)
        if unit.reference is not None and quality_k > 0:
            keys.append(_quality_output(episode, method, images, unit.reference, teacher, teacher_backbone,
                                        quality_k).key)  # fmt: skip
    return keys


def fewshot_refs(store: str, unit: FewShotUnit, teacher: TeacherSetup, student: StudentSetup,
                 teacher_backbone: ArtifactRef | None, student_backbone: ArtifactRef | None,
                 quality_k: int) -> list[ArtifactRef]:  # fmt: skip
    """References to everything an episode's few-shot work wrote, all already in the store (a worker ran it): the
    teacher's score, then per method its labels and quality (when measured), its student and the student's score.

    Raises:
        ArtifactNotFoundError: one of them is missing.
    """
    artifacts, episode = open_store(store), unit.episode
    refs = [artifacts.ref(_score_output(episode, teacher, teacher_backbone).key)]
    for method, images in unit.images.items():
        labels = None
        if method != "supports_only":
            labels = artifacts.ref(_label_output(episode, method, images, teacher, teacher_backbone).key)
            refs.append(labels)
            if unit.reference is not None and quality_k > 0:
                refs.append(artifacts.ref(_quality_output(episode, method, images, unit.reference, teacher,
                                                          teacher_backbone, quality_k).key))  # fmt: skip
        trained = artifacts.ref(_distill_output(episode, method, images, labels, student, student_backbone).key)
        refs += [trained, artifacts.ref(_evaluate_output(episode, trained).key)]
    return refs
