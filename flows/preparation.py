"""Wiring shared by the benchmark and the application: the teacher's and the student's backbones prepared on the
base classes (pre-trained and/or centred), each only when its setup asks for it."""

from __future__ import annotations

from prefect.futures import PrefectFuture

from flows.records import Submissions
from tasks import StepTasks
from tint_core.pipeline.config import StudentSetup, TeacherSetup


def prepare_backbones(steps: StepTasks, submit: Submissions, store: str, dataset: PrefectFuture,
                      teacher: TeacherSetup, student: StudentSetup) -> tuple[PrefectFuture | None,
                                                                              PrefectFuture | None]:  # fmt: skip
    """The prepare-backbone task runs of the teacher and the student (None where the weights are used as they are)."""
    prepared_teacher = (submit(steps.prepare_backbone, store, dataset, teacher.model.backbone, teacher.pretrain,
                               teacher.centre_on_base, teacher.model.compute)
                        if teacher.pretrain or teacher.centre_on_base else None)  # fmt: skip
    prepared_student = (submit(steps.prepare_backbone, store, dataset, student.model.backbone, student.pretrain, False,
                               student.model.compute) if student.pretrain else None)  # fmt: skip
    return prepared_teacher, prepared_student
