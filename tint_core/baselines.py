"""Baselines scored on the same episode as TINT (SPEC §7).

- supports only: the pre-trained student with a prototype-initialised head, fine-tuned on the augmented supports.
- TI-only generation (textual inversion without null-text inversion):
  ``tint_core.diffusion.generate_images(..., method="text_only")``; its images go into
  :func:`tint_core.fewshot.distill.train_student` (or ``run_episode(unlabelled=...)``) exactly like TINT's.
"""

from __future__ import annotations

import torch

from tint_core.fewshot.config import DistillConfig, StudentConfig
from tint_core.fewshot.distill import train_student
from tint_core.fewshot.student import Student
from tint_core.fewshot.training import TrainingCurves


def supports_only_student(
    config: StudentConfig, supports: torch.Tensor, support_labels: torch.Tensor, distill_config: DistillConfig
) -> tuple[Student, TrainingCurves]:
    """A student trained on the N·K supports alone, for the same ``distill_config.steps`` as any distilled one."""
    return train_student(config, supports, support_labels, distill_config)
