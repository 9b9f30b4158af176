"""The model card written beside an exported student: what it recognises, what to feed it, how accurate it is (as
far as the evidence goes), what it costs against its teacher, and where it came from.

``card.json`` is :class:`ModelCard` as JSON; ``model_card.md`` is :func:`card_markdown` of it. Every number in it is
read from the run or measured by the export; none is typed in.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform

from pydantic import BaseModel, Field

from tint_core.evaluation import AccuracySummary
from tint_core.export.measure import ModelCost, Speed
from tint_core.export.quantize import QuantizationResult


class InputSpec(BaseModel):
    """What the exported model takes: ``images`` float32 (batch, 3, size, size) RGB in [0, 1]."""

    size: int
    mean: list[float] = Field(description="per-channel mean subtracted inside the model")
    std: list[float] = Field(description="per-channel std divided by inside the model")
    resize: str = "antialiased bilinear to size × size before the model (not in the graph)"


class ExportCheckRecord(BaseModel):
    """onnxruntime against torch on the export's real images."""

    images: int
    max_logit_difference: float
    predictions_equal: bool
    tolerance: float


class AccuracyEvidence(BaseModel):
    """What can honestly be said about accuracy."""

    student: AccuracySummary | None = Field(None, description="the method's students over the run's episodes")
    teacher: AccuracySummary | None = Field(None, description="the teacher over the same episodes")
    images: str = Field(description="the labelled images the export was checked and measured on")
    student_on_images: float | None = Field(None, description="this exported (fp32) student's accuracy on them")
    teacher_on_images: float | None = Field(None, description="the teacher's accuracy on them")
    note: str = ""


class Int8Model(BaseModel):
    """The int8 copy: its accuracy rule and, when kept, its file and speed."""

    result: QuantizationResult
    file_bytes: int | None = None
    onnxruntime: Speed | None = None


class Ratios(BaseModel):
    """Teacher ÷ student for sizes and times (> 1: the student is smaller or faster), student − teacher accuracy."""

    parameters: float
    macs: float
    torch_latency: float
    torch_throughput: float = Field(description="student ÷ teacher images per second")
    onnxruntime_latency: float | None = None
    accuracy_points: float | None = Field(None, description="student − teacher mean accuracy, in points")


class ModelCard(BaseModel):
    """Everything ``model_card.md`` says, as data."""

    title: str
    classes: list[str]
    architecture: dict[str, object] = Field(description="timm name and kwargs, head scale")
    input: InputSpec
    files: dict[str, str] = Field(description="file name → what it is")
    check: ExportCheckRecord
    accuracy: AccuracyEvidence
    student: ModelCost
    teacher: ModelCost
    teacher_architecture: str
    int8: Int8Model | None = None
    lineage: dict[str, object] = Field(description="run, configuration, artifact keys, library versions")

    @property
    def ratios(self) -> Ratios:
        student, teacher = self.student, self.teacher
        points = None
        if self.accuracy.student is not None and self.accuracy.teacher is not None:
            points = 100 * (self.accuracy.student.mean - self.accuracy.teacher.mean)
        onnx = None
        if student.onnxruntime is not None and teacher.onnxruntime is not None:
            onnx = teacher.onnxruntime.latency_ms / student.onnxruntime.latency_ms
        return Ratios(parameters=teacher.parameters / max(student.parameters, 1), macs=teacher.macs / max(student.macs, 1),
                      torch_latency=teacher.torch.latency_ms / student.torch.latency_ms,
                      torch_throughput=student.torch.throughput / teacher.torch.throughput,
                      onnxruntime_latency=onnx, accuracy_points=points)  # fmt: skip


def library_versions() -> dict[str, str]:
    """Versions of what built, exported and measured the model."""
    versions = {"python": platform.python_version()}
    for name in ("tint", "torch", "timm", "onnx", "onnxruntime", "onnxscript"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def count_text(value: float) -> str:
    """A count with a k, M or G suffix."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.2f} {unit}"
    return f"{value:.0f}"


def _bytes(value: int | None) -> str:
    if value is None:
        return "—"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= size:
            return f"{value / size:.2f} {unit}"
    return f"{value} B"


def _speed(speed: Speed | None) -> tuple[str, str]:
    if speed is None:
        return "—", "—"
    return f"{speed.latency_ms:.2f} ms", f"{speed.throughput:,.0f} /s"


def _accuracy(summary: AccuracySummary | None) -> str:
    if summary is None:
        return "—"
    return f"{100 * summary.mean:.1f}% ± {100 * summary.half_width:.1f} ({summary.n_episodes} episodes)"


def times(ratio: float, smaller: str, larger: str) -> str:
    """A teacher ÷ student ratio in words: "4.0× fewer …" above 1, "2.0× more …" (the inverse) below."""
    return f"{ratio:.1f}× {smaller}" if ratio >= 1 else f"{1 / ratio:.1f}× {larger}"


def headline(card: ModelCard) -> str:
    """One sentence: N× fewer parameters, M× faster, X points below (or above) the teacher."""
    ratios = card.ratios
    parts = [times(ratios.parameters, "fewer parameters", "more parameters"),
             times(ratios.macs, "fewer MACs", "more MACs"),
             times(ratios.torch_latency, "faster at batch 1 under torch", "slower at batch 1 under torch")]  # fmt: skip
    if ratios.onnxruntime_latency is not None:
        parts.append(times(ratios.onnxruntime_latency, "faster under onnxruntime", "slower under onnxruntime"))
    sentence = "Against its teacher: " + ", ".join(parts)
    if ratios.accuracy_points is not None:
        side = "below" if ratios.accuracy_points < 0 else "above"
        sentence += f"; {abs(ratios.accuracy_points):.1f} points {side} the teacher's accuracy"
    return sentence + "."


def card_markdown(card: ModelCard) -> str:
    """The card as Markdown."""
    evidence, spec = card.accuracy, card.input
    student_latency, student_throughput = _speed(card.student.torch)
    student_ort_latency, student_ort_throughput = _speed(card.student.onnxruntime)
    teacher_latency, teacher_throughput = _speed(card.teacher.torch)
    teacher_ort_latency, teacher_ort_throughput = _speed(card.teacher.onnxruntime)
    batch = card.student.torch.batch
    lines = [
        f"# {card.title}", "", headline(card), "",
        "## Classes", "", ", ".join(f"`{name}`" for name in card.classes), "",
        "## Input", "",
        (f"`images`: float32 (batch, 3, {spec.size}, {spec.size}), RGB in [0, 1]; resize {spec.resize}. The model "
         f"normalises inside (mean {spec.mean}, std {spec.std}) and returns `logits` (batch, {len(card.classes)}) "
         "in the order of the classes above. The same facts are in the ONNX file's metadata (`tint_*` keys)."), "",
        "## Files", "", *[f"- `{name}`: {what}" for name, what in card.files.items()], "",
        "## Accuracy", "",
        "| model | accuracy over the run's episodes (95% interval) | on the export's images |", "|---|---|---|",
        f"| student | {_accuracy(evidence.student)} | {_percent(evidence.student_on_images)} |",
        f"| teacher ({card.teacher_architecture}) | {_accuracy(evidence.teacher)} | {_percent(evidence.teacher_on_images)} |",
    ]  # fmt: skip
    if card.int8 is not None:
        lines.append(f"| student, int8 | — | {_percent(card.int8.result.int8_accuracy)} |")
    lines += ["", f"Export images: {evidence.images}."]
    if evidence.note:
        lines += ["", evidence.note]
    if card.int8 is not None:
        lines += ["", f"int8 quantisation: {card.int8.result}."]
    lines += [
        "", "## Size and speed", "",
        (f"CPU, measured in one run: latency is the median of {card.student.torch.repeats} passes of one image, "
         f"throughput the images per second at batch {batch} ({card.student.torch.threads} threads)."), "",
        "| model | parameters | MACs per image | file | torch latency | torch throughput | onnxruntime latency | "
        "onnxruntime throughput |", "|---|---|---|---|---|---|---|---|",
        (f"| student | {count_text(card.student.parameters)} | {count_text(card.student.macs)} | "
         f"{_bytes(card.student.file_bytes)} | {student_latency} | {student_throughput} | {student_ort_latency} | "
         f"{student_ort_throughput} |"),
    ]  # fmt: skip
    if card.int8 is not None and card.int8.onnxruntime is not None:
        latency, throughput = _speed(card.int8.onnxruntime)
        lines.append(f"| student, int8 | {count_text(card.student.parameters)} | — | {_bytes(card.int8.file_bytes)} | — | "
                     f"— | {latency} | {throughput} |")  # fmt: skip
    lines.append(
        f"| teacher ({card.teacher_architecture}) | {count_text(card.teacher.parameters)} | {count_text(card.teacher.macs)} | "
        f"{_bytes(card.teacher.file_bytes)} | {teacher_latency} | {teacher_throughput} | {teacher_ort_latency} | "
        f"{teacher_ort_throughput} |"
    )
    check = card.check
    lines += [
        "", "## Export check", "",
        (f"onnxruntime against torch on {check.images} images: largest logit difference "
         f"{check.max_logit_difference:.2e} (allowed {check.tolerance:.0e}), predictions "
         f"{'identical' if check.predictions_equal else 'different'}."),
        "", "## Lineage", "", "```json", json.dumps(card.lineage, indent=1, default=str), "```", "",
    ]  # fmt: skip
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"
