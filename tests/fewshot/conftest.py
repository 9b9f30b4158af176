"""Shared fixtures: the real digits dataset and backbones pre-trained on its base classes, built once per session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tint_core.data import FewShotDataset, write_digits_dataset
from tint_core.fewshot import digits_recipe as recipe

# One thread on purpose: these models are tiny, so a second OpenMP thread gains little, and when the two cores are
# shared with other jobs, spinning OpenMP threads slow small ops down by ten times or more.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits(tmp_path_factory) -> FewShotDataset:
    """The bundled digits as an ImageFolder tree of 16×16 PNGs (base 0–4, novel 5–9)."""
    return write_digits_dataset(str(tmp_path_factory.mktemp("digits")), size=16)


@dataclass
class Backbones:
    teacher: Path
    student: Path


@pytest.fixture(scope="session")
def digits_backbones(digits, tmp_path_factory) -> Backbones:
    """Teacher and student backbones pre-trained briefly on base digits 0–4 only (tens of seconds)."""
    folder = tmp_path_factory.mktemp("backbones")
    teacher, student = folder / "teacher.safetensors", folder / "student.safetensors"
    recipe.pretrain_backbone(digits, recipe.teacher_backbone(), recipe.teacher_pretrain(epochs=3), teacher)
    recipe.pretrain_backbone(digits, recipe.student_backbone(), recipe.student_pretrain(epochs=4), student)
    return Backbones(teacher, student)
