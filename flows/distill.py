"""The application flow: a folder of support images per class → a distilled student and a report.

    tint distill SUPPORTS OUTPUT [--preset digits | --config CONFIG.yaml]   (flows/cli.py; CONFIG: a DistillAppConfig)

The supports are specialised (textual + null-text inversion), TINT images are generated and labelled by the teacher,
and the student is distilled on them; no query set is needed. With base classes set, the teacher and the student are
first prepared on them, as in the benchmark. Every step is cached in the store.
"""

from pathlib import Path

from prefect import flow, get_run_logger
from pydantic import BaseModel

from flows.preparation import prepare_backbones
from flows.records import Submissions
from flows.stopping import stoppable
from tasks import StepTasks
from tasks.runtime import set_steps_per_device
from tint_core.pipeline.checks import check_distill_app
from tint_core.pipeline.config import DistillAppConfig
from tint_core.pipeline.requests import DistillRequest

METHOD = "tint"


class DistillOutcome(BaseModel):
    """Where the student and its report were written, and how many task runs the flow made."""

    student: str
    report: str
    onnx: str | None = None
    task_runs: int


@flow(name="distill")
@stoppable
def distill(run: DistillRequest, config: DistillAppConfig | None = None) -> DistillOutcome:
    """Distil a student from a folder of support images (one subfolder per class) through TINT images.

    Args:
        run: the supports, the output folder, a preset, the store, and overrides of any other field.
        config: advanced: a whole configuration (a YAML file's content) in place of the preset.
    """
    config = run.resolve(config)
    counts = check_distill_app(config)  # one-line errors before any work, nothing written
    set_steps_per_device(1)  # one heavy step at a time per device, whatever an earlier flow of this process set
    steps, store, submit = StepTasks(config.store), config.store, Submissions()
    supports = submit(steps.index_support_set, store, config.supports, config.image_size)
    prepared_teacher = prepared_student = None
    if config.base is not None:
        dataset = submit(steps.index_dataset, store, config.base)
        prepared_teacher, prepared_student = prepare_backbones(steps, submit, store, dataset, config.teacher,
                                                               config.student)  # fmt: skip
    specializations = submit(steps.specialize_unit, store, supports, list(range(len(counts))), config.generator)
    images = [submit(steps.generate_unit, store, specializations, config.generator, METHOD)]
    labels = submit(steps.label_images, store, supports, METHOD, images, config.teacher, prepared_teacher)
    trained = submit(steps.distill_student, store, supports, METHOD, images, labels, config.student, prepared_student)
    path = Path(submit.result(submit(steps.export_student, store, trained, labels, supports, specializations,
                                     images[0], config.output)))  # fmt: skip
    onnx = None
    if config.export.onnx:
        onnx = submit.result(submit(steps.package_student, store, trained, labels, supports, config.teacher.model,
                                    prepared_teacher, config.output, config.export, config.model_dump(mode="json")))  # fmt: skip
    get_run_logger().info("student of %d classes written to %s (report: %s)", len(counts), path,
                          path.parent / "report.md")  # fmt: skip
    return DistillOutcome(student=str(path), report=str(path.parent / "report.md"), onnx=onnx,
                          task_runs=len(submit.futures))
