"""Shipping a student (tint_core.export): ONNX against torch on real digits, the refusal of an export that drifts,
metadata that round-trips, int8 kept or refused by the accuracy rule, costs that are measured, and the card."""

import json

import pytest
import torch
from torch import nn

from tint_core.export.card import AccuracyEvidence, ModelCard, headline
from tint_core.export.config import ExportConfig
from tint_core.export.measure import count_parameters, macs_per_image, measure_speed
from tint_core.export.onnx import ExportMismatchError, OnnxClassifier, read_metadata
from tint_core.export.package import (
    CARD_JSON,
    CARD_MARKDOWN,
    INT8_ONNX,
    STUDENT_ONNX,
    ExportImages,
    TeacherModel,
    package_student,
)
from tint_core.export.quantize import accept_quantized
from tint_core.fewshot.backbones import FeatureExtractor, eval_in_batches
from tint_core.fewshot.config import BackboneConfig, StudentConfig
from tint_core.fewshot.student import Student, create_student, student_description
from tint_core.fewshot.teacher import PrototypeTeacher, TeacherClassifier

FAST = ExportConfig(repeats=2, batch=8)
CLASSES = ["five", "six", "seven", "eight", "nine"]
STUDENT = StudentConfig(backbone=BackboneConfig(name="resnet12_tiny", input_size=16, model_kwargs={"img_size": 16}))


@pytest.fixture(scope="module")
def novel(digits):
    """Real images: 200 novel digits, one support per class among them."""
    images, labels, _ = digits.load_split("novel", size=16)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))[:200]
    images, labels = images[order], labels[order]
    supports = torch.stack([torch.nonzero(labels == label)[0, 0] for label in range(5)])
    return images, labels, supports


def _student(novel, cls: type[Student] = Student) -> Student:
    images, labels, supports = novel
    student = cls(create_student(STUDENT, 5).extractor, 5)
    student.init_head_from_prototypes(images[supports], labels[supports])
    return student.eval()


def _teacher(novel) -> TeacherModel:
    images, labels, supports = novel
    extractor = FeatureExtractor.from_config(BackboneConfig(name="tint_convnet_tiny", input_size=16,
                                                            model_kwargs={"img_size": 16}))  # fmt: skip
    teacher = PrototypeTeacher(extractor, scale=10.0)
    teacher.process_support_set(images[supports], labels[supports])
    return TeacherModel(TeacherClassifier(teacher), 16, "tint_convnet_tiny")


def _export(student, novel, output, config=FAST, labels=None, **kwargs) -> ModelCard:
    images, true_labels, _ = novel
    labels = true_labels if labels is None else labels
    return package_student(student, student_description(student, STUDENT, CLASSES), _teacher(novel),
                           ExportImages(images, labels, "200 novel digits"), AccuracyEvidence(images="200 novel digits"),
                           {"run_id": "test"}, output, config, **kwargs)  # fmt: skip


def test_the_onnx_student_reproduces_torch_on_real_digits_and_carries_what_feeding_it_needs(novel, tmp_path):
    student = _student(novel)
    card = _export(student, novel, tmp_path / "out")
    images, labels, _ = novel
    exported = OnnxClassifier(tmp_path / "out" / STUDENT_ONNX)
    reference = eval_in_batches(student, images, 64)
    logits = exported(images)
    assert (logits - reference).abs().max() <= 1e-4 and torch.equal(logits.argmax(1), reference.argmax(1))
    assert card.check.max_logit_difference <= 1e-4 and card.check.predictions_equal and card.check.images == 200
    assert exported(images[:1]).shape == (1, 5) and exported(images[:37]).shape == (37, 5)  # a dynamic batch axis
    metadata = read_metadata(tmp_path / "out" / STUDENT_ONNX)
    assert metadata["classes"] == CLASSES and metadata["input_size"] == 16
    assert metadata["mean"] == student.extractor.mean.flatten().tolist()
    assert metadata["std"] == student.extractor.std.flatten().tolist()
    # the card's figures are measured: accuracies from the logits, parameters and file from the objects themselves
    assert card.accuracy.student_on_images == pytest.approx(float((reference.argmax(1) == labels).float().mean()))
    assert card.student.parameters == count_parameters(student)
    assert card.student.file_bytes == (tmp_path / "out" / STUDENT_ONNX).stat().st_size
    assert card.teacher.parameters == count_parameters(_teacher(novel).module)
    assert card.ratios.parameters == pytest.approx(card.teacher.parameters / card.student.parameters)
    assert ModelCard.model_validate_json((tmp_path / "out" / CARD_JSON).read_text()) == card
    markdown = (tmp_path / "out" / CARD_MARKDOWN).read_text()
    assert headline(card) in markdown and "`seven`" in markdown
    assert f"{card.ratios.parameters:.1f}×" in headline(card) or f"{1 / card.ratios.parameters:.1f}×" in headline(card)
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [CARD_JSON, CARD_MARKDOWN, STUDENT_ONNX]


class Drifting(Student):
    """A student whose exported graph computes something else than its eager forward."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = super().forward(images)
        return logits + 0.01 if torch.compiler.is_exporting() else logits


def test_an_export_that_does_not_reproduce_torch_is_refused_with_its_figure_and_writes_nothing(novel, tmp_path):
    with pytest.raises(ExportMismatchError, match=r"largest logit difference 1\.00e-02 \(tolerance 1e-04\)"):
        _export(_student(novel, Drifting), novel, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []  # neither the output nor a staging folder


def test_an_existing_export_is_kept_unless_overwrite(novel, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / CARD_JSON).write_text("{}")
    with pytest.raises(FileExistsError, match="already holds card.json: choose another folder or pass --overwrite"):
        _export(_student(novel), novel, tmp_path / "out")
    assert (tmp_path / "out" / CARD_JSON).read_text() == "{}" and len(list(tmp_path.iterdir())) == 1


def test_int8_is_kept_or_refused_by_the_accuracy_rule(novel, tmp_path):
    student = _student(novel)
    images, _, _ = novel
    # Labels the fp32 student gets all right: any prediction int8 changes is a point lost.
    own = eval_in_batches(student, images, 64).argmax(1)
    strict = _export(student, novel, tmp_path / "strict", ExportConfig(**{**FAST.model_dump(), "quantize": True}),
                     labels=own)  # fmt: skip
    result = strict.int8.result
    assert result.fp32_accuracy == 1.0 and result.int8_accuracy < 0.99 and not result.kept
    assert not (tmp_path / "strict" / INT8_ONNX).exists() and strict.int8.file_bytes is None
    assert "not written" in (tmp_path / "strict" / CARD_MARKDOWN).read_text()
    loose = _export(student, novel, tmp_path / "loose", ExportConfig(**{**FAST.model_dump(), "quantize": True,
                                                                        "max_quantized_drop": 1 - result.int8_accuracy}),
                    labels=own)  # fmt: skip
    assert loose.int8.result.kept and loose.int8.result.int8_accuracy == result.int8_accuracy
    int8_file = tmp_path / "loose" / INT8_ONNX
    assert loose.int8.file_bytes == int8_file.stat().st_size < (tmp_path / "loose" / STUDENT_ONNX).stat().st_size
    int8_logits = OnnxClassifier(int8_file)(images)
    assert float((int8_logits.argmax(1) == own).float().mean()) == result.int8_accuracy


def test_the_accuracy_rule_at_its_edge():
    assert accept_quantized(0.80, 0.79, 100, 0.01).kept
    assert not accept_quantized(0.80, 0.78, 100, 0.01).kept
    assert accept_quantized(0.80, 0.85, 100, 0.0).kept  # int8 may do better
    with pytest.raises(ValueError, match=r"max_drop is a fraction of accuracy in \[0, 1\], got 5"):
        accept_quantized(0.8, 0.7, 100, 5)


def test_the_teacher_as_one_module_gives_the_teachers_logits(novel):
    images, labels, supports = novel
    teacher = PrototypeTeacher(FeatureExtractor.from_config(BackboneConfig(name="tint_convnet_tiny", input_size=16)),
                               scale=10.0, centre=torch.full((512,), 0.1))  # fmt: skip
    teacher.process_support_set(images[supports], labels[supports])
    assert torch.allclose(eval_in_batches(TeacherClassifier(teacher), images, 64), teacher(images), atol=1e-5)


def test_macs_and_parameters_are_counted_from_the_module():
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(8 * 16 * 16, 5))
    assert macs_per_image(conv, 16) == 16 * 16 * 8 * 3 * 9 + 8 * 16 * 16 * 5
    assert count_parameters(conv) == 8 * 3 * 9 + 8 * 16 * 16 * 5 + 5
    speed = measure_speed(lambda batch: conv(batch), 16, batch=4, repeats=3)
    assert speed.latency_ms > 0 and speed.throughput > 0 and (speed.batch, speed.repeats) == (4, 3)
    assert json.loads(speed.model_dump_json())["batch"] == 4
