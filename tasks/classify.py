"""Classifier tasks: prepare backbones on the base classes, score the teacher, label, measure image-set quality,
distil, evaluate."""

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.caching import StoredArtifacts
from tasks.runtime import STEP_OPTIONS, on_device
from tint_core.export.card import headline
from tint_core.export.config import ExportConfig
from tint_core.export.package import STUDENT_ONNX
from tint_core.fewshot.config import BackboneConfig, ComputeConfig, PretrainConfig, TeacherConfig
from tint_core.pipeline import application, classify, export
from tint_core.pipeline.config import StudentSetup, TeacherSetup
from tint_core.store import ArtifactRef


@task(name="prepare-backbone", cache_policy=StoredArtifacts(keys=classify.backbone_keys), **STEP_OPTIONS)
def prepare_backbone(store: str, dataset: ArtifactRef, backbone: BackboneConfig, pretrain: PretrainConfig | None,
                     centre: bool, compute: ComputeConfig) -> ArtifactRef:  # fmt: skip
    """Pre-train a teacher's or student's backbone on the base classes and/or measure its mean base feature."""
    return on_device(compute.device, classify.prepare_backbone, store, dataset, backbone, pretrain, centre, compute)


@task(name="score-teacher", cache_policy=StoredArtifacts(keys=classify.teacher_score_keys), **STEP_OPTIONS)
def score_teacher(store: str, episode: ArtifactRef, teacher: TeacherSetup, prepared: ArtifactRef | None
                  ) -> ArtifactRef:  # fmt: skip
    """The teacher's accuracy on an episode's queries."""
    return on_device(teacher.model.compute.device, classify.score_teacher, store, episode, teacher, prepared)


@task(name="label", cache_policy=StoredArtifacts(keys=classify.label_keys), **STEP_OPTIONS)
def label_images(store: str, episode: ArtifactRef, method: str, images: list[list[ArtifactRef]] | None,
                 teacher: TeacherSetup, prepared: ArtifactRef | None) -> ArtifactRef:  # fmt: skip
    """The teacher's soft labels for one method's unlabelled images of an episode."""
    return on_device(teacher.model.compute.device, classify.label_images, store, episode, method, images, teacher, prepared)


@task(name="quality", cache_policy=StoredArtifacts(keys=classify.quality_keys), **STEP_OPTIONS)
def measure_quality(store: str, episode: ArtifactRef, method: str, images: list[list[ArtifactRef]],
                    reference: list[ArtifactRef], teacher: TeacherSetup, prepared: ArtifactRef | None,
                    k: int) -> ArtifactRef:  # fmt: skip
    """Precision and recall of one method's unlabelled images against the episode classes' real images."""
    return on_device(teacher.model.compute.device, classify.measure_quality, store, episode, method, images,
                     reference, teacher, prepared, k)  # fmt: skip


@task(name="distill", cache_policy=StoredArtifacts(keys=classify.distill_keys), **STEP_OPTIONS)
def distill_student(store: str, episode: ArtifactRef, method: str, images: list[list[ArtifactRef]] | None,
                    labels: ArtifactRef | None, student: StudentSetup,
                    prepared: ArtifactRef | None) -> ArtifactRef:  # fmt: skip
    """Train one method's student on an episode."""
    ref = on_device(student.model.compute.device, classify.distill_student, store, episode, method, images, labels,
                    student, prepared)  # fmt: skip
    get_run_logger().info("distilled the %s student: %s", method, ref.key[:12])
    return ref


@task(name="evaluate", cache_policy=StoredArtifacts(keys=classify.evaluate_keys), **STEP_OPTIONS)
def evaluate_student(store: str, episode: ArtifactRef, student: ArtifactRef, device: str) -> ArtifactRef:
    """A student's accuracy on the episode's queries, computed on ``device``."""
    return on_device(device, classify.evaluate_student, store, episode, student, device)


@task(name="export-student", cache_policy=NO_CACHE)
def export_student(store: str, student: ArtifactRef, labels: ArtifactRef, supports: ArtifactRef,
                   specializations: list[ArtifactRef], images: list[ArtifactRef], output: str) -> str:  # fmt: skip
    """Write the distilled student, its description, a report and pictures into a plain folder (always runs: cheap)."""
    return str(application.export_student(store, student, labels, supports, specializations, images, output))


@task(name="package-student", cache_policy=NO_CACHE)
def package_student(store: str, student: ArtifactRef, labels: ArtifactRef, supports: ArtifactRef,
                    teacher: TeacherConfig, prepared_teacher: ArtifactRef | None, output: str, config: ExportConfig,
                    configuration: dict[str, object]) -> str:  # fmt: skip
    """Export the student to ONNX in ``output``, checked against torch on the supports, with its model card (always
    runs: its speed figures are measured where it runs)."""
    card = export.export_app_student(store, student, labels, supports, teacher, prepared_teacher, output, config,
                                     configuration)  # fmt: skip
    get_run_logger().info("%s", headline(card))
    return str(Path(output) / STUDENT_ONNX)
