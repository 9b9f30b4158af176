"""An episode's few-shot work, and the flow a fewshot worker runs (deployments/prefect.yaml).

Per episode: the teacher's score on the queries; per method: the teacher's soft labels for the method's images, their
precision and recall against real images, the student distilled under the one budget, its score. The benchmark wires
the same steps (``submit_episode``) in its own process, or waits for a worker's run of them and finds them in the
store; either way the artifacts, keys and cache records are the same.
"""

from dataclasses import dataclass
from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner

from flows.records import Submissions
from flows.stopping import stoppable
from tasks import StepTasks
from tasks.runtime import set_steps_per_device
from tint_core.devices import check_device
from tint_core.pipeline.config import FewShotUnit, StudentSetup, TeacherSetup
from tint_core.store import ArtifactRef


@dataclass
class EpisodeSteps:
    """The task runs of one episode's few-shot work (``labels`` and ``quality`` lack supports_only)."""

    teacher_score: PrefectFuture
    labels: dict[str, PrefectFuture]
    quality: dict[str, PrefectFuture]
    students: dict[str, PrefectFuture]
    scores: dict[str, PrefectFuture]


def submit_episode(steps: StepTasks, submit: Submissions, store: str, episode: Any, images: dict[str, Any],
                   reference: Any, teacher: TeacherSetup, student: StudentSetup, teacher_backbone: Any,
                   student_backbone: Any, quality_k: int, wait_for: list[PrefectFuture] | None = None
                   ) -> EpisodeSteps:  # fmt: skip
    """Submit an episode's few-shot steps (each argument a value or the future of one).

    Args:
        images: method → its unlabelled images (None for supports_only), in the order the methods are scored.
        reference: the real pool the images' quality is measured against; None skips the measurement.
        wait_for: task runs to finish first (the deployment run that computed these steps on a worker).
    """
    teacher_score = submit(steps.score_teacher, store, episode, teacher, teacher_backbone, wait_for=wait_for)
    labels, quality, students, scores = {}, {}, {}, {}
    for method, method_images in images.items():
        if method != "supports_only":
            labels[method] = submit(steps.label_images, store, episode, method, method_images, teacher,
                                    teacher_backbone, wait_for=wait_for)  # fmt: skip
            if reference is not None and quality_k > 0:
                quality[method] = submit(steps.measure_quality, store, episode, method, method_images, reference,
                                         teacher, teacher_backbone, quality_k, wait_for=wait_for)  # fmt: skip
        students[method] = submit(steps.distill_student, store, episode, method, method_images, labels.get(method),
                                  student, student_backbone, wait_for=wait_for)  # fmt: skip
        scores[method] = submit(steps.evaluate_student, store, episode, students[method],
                                student.model.compute.device, wait_for=wait_for)  # fmt: skip
    return EpisodeSteps(teacher_score, labels, quality, students, scores)


def check_fewshot_devices(teacher: TeacherSetup, student: StudentSetup) -> None:
    """One-line error when the teacher's or the student's device is not on this machine."""
    check_device(teacher.model.compute.device, "teacher.model.compute.device")
    check_device(student.model.compute.device, "student.model.compute.device")


@flow(name="fewshot", task_runner=ThreadPoolTaskRunner(max_workers=8))
@stoppable
def fewshot(store: str, units: list[FewShotUnit], teacher: TeacherSetup, student: StudentSetup,
            teacher_backbone: ArtifactRef | None = None, student_backbone: ArtifactRef | None = None,
            quality_k: int = 3, steps_per_device: int = 1) -> int:  # fmt: skip
    """Score the teacher, then label, measure, distil and score every method of each episode, on this worker's
    devices; return how many steps ran.

    Args:
        store: the artifact store shared with the parent flow.
        units: the episodes, each with every method's images (the benchmark's steps) and the quality's reference.
        teacher: the teacher, its device and precision (the benchmark passes its own).
        student: the student and its training budget.
        teacher_backbone: the teacher's backbone prepared on the base classes (None: its weights as they are).
        student_backbone: the student's, likewise.
        quality_k: k of the images' precision and recall (0: not measured).
        steps_per_device: steps run side by side on one device of this worker.
    """
    check_fewshot_devices(teacher, student)  # one line, before any work
    set_steps_per_device(steps_per_device)
    steps, submit, logger = StepTasks(store), Submissions(), get_run_logger()
    for unit in units:
        submit_episode(steps, submit, store, unit.episode, unit.images, unit.reference, teacher, student,
                       teacher_backbone, student_backbone, quality_k)  # fmt: skip
    for index, future in enumerate(submit.futures, start=1):
        future.result()  # raises the first failure
        if index % max(1, len(submit.futures) // 4) == 0:
            logger.info("%d of %d few-shot steps done", index, len(submit.futures))
    return len(submit.futures)
