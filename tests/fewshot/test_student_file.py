"""A student saved as one safetensors file comes back identical, and its backbone is a plain timm state dict."""

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file

from tint_core.fewshot.config import BackboneConfig, StudentConfig
from tint_core.fewshot.student import create_student, load_student, save_student

CONFIG = StudentConfig(backbone=BackboneConfig(name="resnet12_tiny", input_size=16, model_kwargs={"img_size": 16}))


def test_a_saved_student_predicts_exactly_as_before(tmp_path):
    student = create_student(CONFIG, n_way=3)
    images = torch.rand(6, 3, 16, 16)
    student.init_head_from_prototypes(images, torch.tensor([0, 0, 1, 1, 2, 2]))
    path = save_student(student, CONFIG, ["cat", "dog", "owl"], tmp_path / "student.safetensors")
    loaded = load_student(path)
    assert torch.equal(loaded.predict(images), student.predict(images))
    assert loaded.n_way == 3 and loaded.extractor.input_size == 16


def test_the_backbone_tensors_load_into_timm_and_give_the_same_features(tmp_path):
    student = create_student(CONFIG, n_way=2)
    path = save_student(student, CONFIG, ["a", "b"], tmp_path / "student.safetensors")
    prefix = "extractor.backbone."
    backbone = timm.create_model("resnet12_tiny", num_classes=0, img_size=16).eval()
    backbone.load_state_dict({k[len(prefix):]: v for k, v in load_file(path).items() if k.startswith(prefix)})
    x = torch.rand(2, 3, 16, 16)
    assert torch.allclose(backbone(student.extractor.prepare(x)), student.extractor.embed(x))


def test_class_names_must_match_the_head_and_foreign_files_are_refused(tmp_path):
    student = create_student(CONFIG, n_way=2)
    with pytest.raises(ValueError, match="3 class names for a 2-way student"):
        save_student(student, CONFIG, ["a", "b", "c"], tmp_path / "student.safetensors")
    save_file({"w": torch.zeros(1)}, tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="not a student written by save_student"):
        load_student(tmp_path / "other.safetensors")
