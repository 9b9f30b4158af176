"""The student: any timm backbone (or ResNet-12) with a new N-way cosine head initialised from support prototypes.

Initialising the head from prototypes makes the untrained student exactly a prototype classifier on its own
features, so distillation starts from a sensible N-way model instead of a random head.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tint_core.fewshot.backbones import FeatureExtractor, create_backbone, eval_in_batches
from tint_core.fewshot.config import StudentConfig
from tint_core.fewshot.teacher import check_support_set, class_prototypes


class CosineHead(nn.Module):
    """Logits ``scale · cos(feature, weight_c)``: (B, D) → (B, n_way)."""

    def __init__(self, n_way: int, num_features: int, scale: float):
        super().__init__()
        self.scale = scale
        self.weight = nn.Parameter(torch.zeros(n_way, num_features))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.scale * F.normalize(features, dim=1) @ F.normalize(self.weight, dim=1).T


class Student(nn.Module):
    """Backbone + cosine head; ``forward`` is differentiable, ``predict`` is batched eval-mode inference."""

    def __init__(self, extractor: FeatureExtractor, n_way: int, head_scale: float = 10.0):
        super().__init__()
        self.extractor = extractor
        self.head = CosineHead(n_way, extractor.num_features, head_scale)

    @property
    def n_way(self) -> int:
        return self.head.weight.shape[0]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] → (B, n_way) logits."""
        return self.head(self.extractor(images))

    @torch.no_grad()
    def init_head_from_prototypes(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Set each class weight to the class's mean normalised support feature (eval-mode features)."""
        check_support_set(images, labels)
        features = self.extractor.embed(images)
        if int(labels.max()) + 1 != self.n_way:
            raise ValueError(f"supports cover {int(labels.max()) + 1} classes, the head has {self.n_way}")
        self.head.weight.copy_(class_prototypes(features, labels))

    def predict(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Eval-mode logits (B, n_way) on the CPU, ``batch_size`` images at a time on the student's device."""
        return eval_in_batches(self, images, batch_size)


def create_student(config: StudentConfig, n_way: int) -> Student:
    """Build the student's backbone (random, or from ``config.backbone.weights``) with a zero N-way head, on
    ``config.compute``'s device and precision."""
    if n_way < 2:
        raise ValueError(f"a student needs n_way ≥ 2, got {n_way}")
    extractor = FeatureExtractor.from_config(config.backbone, config.compute)
    return Student(extractor, n_way, config.head_scale).to(extractor.device)


BACKBONE_PREFIX = "extractor.backbone."


def student_description(student: Student, config: StudentConfig, classes: Sequence[str]) -> dict[str, object]:
    """What rebuilds a student besides its tensors: timm name and kwargs, input size, head scale, class names."""
    if len(classes) != student.n_way:
        raise ValueError(f"{len(classes)} class names for a {student.n_way}-way student")
    return {
        "timm_name": config.backbone.name,
        "model_kwargs": dict(config.backbone.model_kwargs),
        "input_size": student.extractor.input_size,
        "head_scale": student.head.scale,
        "classes": list(classes),
    }


def student_from_state(tensors: Mapping[str, torch.Tensor], description: Mapping[str, object]) -> Student:
    """Rebuild a student from its ``state_dict`` and :func:`student_description` (the timm backbone is built by
    ``timm.create_model(timm_name, num_classes=0, **model_kwargs)``)."""
    backbone = create_backbone(str(description["timm_name"]), **dict(description["model_kwargs"]))  # type: ignore[arg-type]
    student = Student(FeatureExtractor(backbone, int(description["input_size"])), len(description["classes"]),
                      float(description["head_scale"]))  # type: ignore[arg-type]  # fmt: skip
    student.load_state_dict(dict(tensors), strict=True)
    return student.eval()


def save_student(student: Student, config: StudentConfig, classes: Sequence[str], path: str | Path) -> Path:
    """Write one safetensors file: the student's tensors, with its description in the file's metadata.

    The ``extractor.backbone.*`` tensors are a plain timm state dict (strip the prefix), the cosine head is
    ``head.weight`` (n_way, features); :func:`load_student` reads the file back.
    """
    return save_student_state(student.state_dict(), student_description(student, config, classes), path)


def save_student_state(tensors: Mapping[str, torch.Tensor], description: Mapping[str, object], path: str | Path) -> Path:
    """:func:`save_student` for a state dict and description already at hand (e.g. read from the artifact store)."""
    from safetensors.torch import save_file

    path = Path(path)
    contiguous = {name: value.detach().contiguous() for name, value in tensors.items()}
    save_file(contiguous, str(path), metadata={"tint_student": json.dumps(dict(description))})
    return path


def load_student(path: str | Path) -> Student:
    """Read a file written by :func:`save_student` (safetensors only: nothing is unpickled)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if "tint_student" not in metadata:
        raise ValueError(f"{path} is not a student written by save_student (no 'tint_student' metadata)")
    return student_from_state(load_file(str(path)), json.loads(metadata["tint_student"]))
