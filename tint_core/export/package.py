"""A student packaged to ship: ``student.onnx`` checked against torch, an optional ``student.int8.onnx`` kept by the
accuracy rule, and the model card measuring both against the teacher.

Everything is written into a staging folder beside the output and moved in only once every check passed, so a
refused export leaves nothing behind.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tint_core.evaluation.accuracy import episode_accuracy
from tint_core.export.card import (
    AccuracyEvidence,
    ExportCheckRecord,
    InputSpec,
    Int8Model,
    ModelCard,
    card_markdown,
    library_versions,
)
from tint_core.export.config import ExportConfig
from tint_core.export.measure import ModelCost, measure_cost, measure_speed
from tint_core.export.onnx import ExportMismatchError, OnnxClassifier, check_export, export_onnx
from tint_core.export.quantize import accept_quantized, quantize_int8
from tint_core.fewshot.backbones import eval_in_batches
from tint_core.fewshot.student import Student

logger = logging.getLogger(__name__)

STUDENT_ONNX, INT8_ONNX, CARD_JSON, CARD_MARKDOWN = "student.onnx", "student.int8.onnx", "card.json", "model_card.md"
EXPORT_FILES = (STUDENT_ONNX, INT8_ONNX, CARD_JSON, CARD_MARKDOWN)


@dataclass(frozen=True)
class ExportImages:
    """Real images the export is checked on (and, when labelled, measured on), and what they are."""

    images: torch.Tensor  # (B, 3, H, W) in [0, 1]
    labels: torch.Tensor | None  # (B,) class indices, or None
    description: str


@dataclass(frozen=True)
class TeacherModel:
    """The teacher to measure against: an adapted classifier module (B, 3, S, S) → (B, n_way) on the CPU."""

    module: nn.Module
    input_size: int
    name: str


def check_output(output: Path, overwrite: bool) -> None:
    """Refuse an output that is a file, or that already holds an export (unless ``overwrite``)."""
    if output.exists() and not output.is_dir():
        raise FileExistsError(f"{output} is a file: give a folder")
    existing = [name for name in EXPORT_FILES if (output / name).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{output} already holds {', '.join(existing)}: choose another folder or pass --overwrite")


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def _accuracy(logits: torch.Tensor, labels: torch.Tensor | None) -> float | None:
    return None if labels is None else episode_accuracy(logits, labels)


def _teacher_cost(teacher: TeacherModel, staging: Path, config: ExportConfig) -> ModelCost:
    """The teacher's cost, its onnxruntime speed from a temporary export (left out, with a warning, if its
    architecture does not export)."""
    path = staging / "teacher.onnx"
    try:
        export_onnx(teacher.module, path, teacher.input_size, {}, config.opset)
    except Exception as error:  # noqa: BLE001 — the teacher is only measured; its export is not the product
        logger.warning("the teacher %s does not export to ONNX (%s): its onnxruntime speed is left out", teacher.name,
                       str(error).splitlines()[0] if str(error) else type(error).__name__)  # fmt: skip
        path = None
    try:
        return measure_cost(teacher.module, teacher.input_size, config.repeats, config.batch, path)
    finally:
        if path is not None:
            path.unlink(missing_ok=True)


def package_student(student: Student, description: Mapping[str, object], teacher: TeacherModel, data: ExportImages,
                    accuracy: AccuracyEvidence, lineage: Mapping[str, object], output: str | Path,
                    config: ExportConfig | None = None, title: str = "", overwrite: bool = False) -> ModelCard:  # fmt: skip
    """Export ``student`` to ONNX in ``output``, check it, optionally quantise it, measure it and its teacher, and
    write the card.

    Args:
        description: the student's description (``student_description``: timm name and kwargs, classes, ...).
        accuracy: what the run says about accuracy; the figures on ``data`` are added here.
        lineage: run, configuration and artifact keys; library versions are added here.

    Raises:
        ExportMismatchError: onnxruntime does not reproduce torch within ``config.tolerance`` with identical
            predictions (nothing is written).
        FileExistsError: ``output`` already holds an export and ``overwrite`` is false.
    """
    config = config or ExportConfig()
    output = Path(output).expanduser()
    check_output(output, overwrite)
    if config.quantize and data.labels is None:
        raise ValueError("int8 quantisation needs labelled images to apply its accuracy rule")
    classes = list(description["classes"])  # type: ignore[call-overload]
    student = student.cpu().eval()
    extractor = student.extractor
    spec = InputSpec(size=extractor.input_size, mean=extractor.mean.flatten().tolist(), std=extractor.std.flatten().tolist())
    staging = Path(tempfile.mkdtemp(prefix=".tint-export-", dir=_existing_ancestor(output)))
    try:
        student_file = staging / STUDENT_ONNX
        logger.info("exporting the %d-way student %s to ONNX", len(classes), description.get("timm_name"))
        export_onnx(student, student_file, spec.size, {"classes": classes, "input_size": spec.size, "mean": spec.mean,
                                                       "std": spec.std, "layout": "NCHW RGB float32 in [0, 1]",
                                                       "resize": spec.resize}, config.opset)  # fmt: skip
        exported = OnnxClassifier(student_file)
        reference = eval_in_batches(student, data.images, 256)
        check = check_export(reference, exported, data.images, config.tolerance)
        if not check.ok:
            raise ExportMismatchError(f"the ONNX export does not reproduce the student: {check}; nothing written")
        logger.info("onnxruntime reproduces torch: %s", check)
        accuracy = accuracy.model_copy(update={
            "student_on_images": _accuracy(reference, data.labels),
            "teacher_on_images": _accuracy(eval_in_batches(teacher.module, data.images, 256), data.labels),
        })  # fmt: skip
        files = {STUDENT_ONNX: "the student, fp32 ONNX (opset %d, dynamic batch axis)" % config.opset}
        int8 = None
        if config.quantize:
            int8_file = quantize_int8(student_file, staging / INT8_ONNX)
            quantized = OnnxClassifier(int8_file)
            result = accept_quantized(float(accuracy.student_on_images), float(_accuracy(quantized(data.images), data.labels)),
                                      len(data.images), config.max_quantized_drop)  # fmt: skip
            logger.info("%s", result)
            int8 = Int8Model(result=result)
            if result.kept:
                int8 = Int8Model(result=result, file_bytes=int8_file.stat().st_size,
                                 onnxruntime=measure_speed(quantized.run, spec.size, config.batch, config.repeats))  # fmt: skip
                files[INT8_ONNX] = "the student, int8 weights (dynamic quantisation), same input and output"
            else:
                int8_file.unlink()
        logger.info("measuring the student's and the teacher's size and CPU speed")
        card = ModelCard(
            title=title or f"{description.get('timm_name')} student, {len(classes)} classes", classes=classes,
            architecture={key: description[key] for key in ("timm_name", "model_kwargs", "head_scale") if key in description},
            input=spec, files={**files, CARD_JSON: "this card as JSON", CARD_MARKDOWN: "this card"},
            check=ExportCheckRecord(images=check.images, max_logit_difference=check.max_logit_difference,
                                    predictions_equal=check.predictions_equal, tolerance=check.tolerance),
            accuracy=accuracy, student=measure_cost(student, spec.size, config.repeats, config.batch, student_file),
            teacher=_teacher_cost(teacher, staging, config), teacher_architecture=teacher.name, int8=int8,
            lineage={**lineage, "versions": library_versions()},
        )  # fmt: skip
        (staging / CARD_JSON).write_text(card.model_dump_json(indent=1))
        (staging / CARD_MARKDOWN).write_text(card_markdown(card))
        output.mkdir(parents=True, exist_ok=True)
        for name in EXPORT_FILES:
            if (staging / name).exists():
                os.replace(staging / name, output / name)
            elif overwrite:
                (output / name).unlink(missing_ok=True)  # an int8 model of an earlier export must not outlive its card
        return card
    finally:
        shutil.rmtree(staging, ignore_errors=True)
