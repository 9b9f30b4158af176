"""Distillation of a student from teacher soft labels on unlabelled (synthetic) images plus its supports.

loss = T² · KL(softmax(teacher / T) ‖ softmax(student / T)) on unlabelled images
       + support_weight · cross-entropy on the labelled supports.

Unlabelled images are generic: TINT or TI-only synthetic images, or any real pool, as a (M, 3, H, W) tensor or a
list of image paths. Without them the same loop trains on the supports alone (the supports-only baseline).
Every step runs the unlabelled batch and the supports through the student as one batch; augmentation is batched.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from pydantic import Field

from tint_core.config import TintConfig
from tint_core.data.datasets import load_images
from tint_core.evaluation.accuracy import episode_accuracy
from tint_core.fewshot.augment import AugmentConfig, random_affine
from tint_core.fewshot.student import Student, StudentConfig, create_student
from tint_core.fewshot.teacher import check_support_set
from tint_core.fewshot.training import OptimizerName, TrainingCurves, make_optimizer, one_cycle
from tint_core.images import check_image_batch, resize

logger = logging.getLogger(__name__)


class DistillConfig(TintConfig):
    """Distillation schedule and loss (SPEC §7)."""

    epochs: int = Field(10, ge=1, description="passes over the unlabelled images (supports only: steps)")
    batch_size: int = Field(64, ge=1, description="unlabelled images per step (all supports join every step)")
    optimizer: OptimizerName = Field("adamw", description="adamw or sgd (Nesterov)")
    lr: float = Field(1e-3, gt=0, description="peak learning rate of the one-cycle schedule")
    weight_decay: float = Field(0.01, ge=0, description="weight decay")
    temperature: float = Field(4.0, gt=0, description="T of the T²·KL term")
    support_weight: float = Field(1.0, ge=0, description="weight of the cross-entropy on supports")
    augment: AugmentConfig = Field(default_factory=AugmentConfig, description="per-image random affine")
    seed: int = Field(0, description="seeds shuffling and augmentation")


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · KL(softmax(teacher/T) ‖ softmax(student/T)), averaged over the batch; both (B, n_way)."""
    t = temperature
    return F.kl_div(
        F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
        reduction="batchmean", log_target=True,
    ) * (t * t)  # fmt: skip


def distill(
    student: Student,
    supports: torch.Tensor,
    support_labels: torch.Tensor,
    config: DistillConfig,
    unlabelled: torch.Tensor | Sequence[str] | None = None,
    teacher_logits: torch.Tensor | None = None,
    eval_images: torch.Tensor | None = None,
    eval_labels: torch.Tensor | None = None,
) -> TrainingCurves:
    """Train ``student`` in place.

    Args:
        student: with its head already initialised (e.g. from support prototypes).
        supports: (N·K, 3, H, W) in [0, 1]; support_labels: (N·K,) int64.
        config: schedule, loss and augmentation.
        unlabelled: (M, 3, H, W) images in [0, 1] or M local image paths; None trains on supports only.
        teacher_logits: (M, n_way) teacher logits of ``unlabelled`` (required with it).
        eval_images, eval_labels: optional held-out set, scored after every epoch.

    Returns:
        Per-epoch ``kd_loss``, ``support_loss`` and, with an eval set, ``eval_accuracy``.
    """
    # 1. check inputs; bring every image to the student's input size once
    check_support_set(supports, support_labels)
    size = student.extractor.input_size
    supports = resize(supports, size)
    if unlabelled is not None:
        if not isinstance(unlabelled, torch.Tensor):
            unlabelled = load_images(list(unlabelled), size=size)[0]
        check_image_batch(unlabelled, "unlabelled images")
        if teacher_logits is None or teacher_logits.shape != (unlabelled.shape[0], student.n_way):
            shape = None if teacher_logits is None else tuple(teacher_logits.shape)
            raise ValueError(f"teacher_logits must have shape ({unlabelled.shape[0]}, {student.n_way}), got {shape}")
        unlabelled = resize(unlabelled, size)
    n_unlabelled = 0 if unlabelled is None else unlabelled.shape[0]
    # 2. optimiser and schedule
    generator = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = max(1, math.ceil(n_unlabelled / config.batch_size))
    optimizer = make_optimizer(student.parameters(), config.optimizer, config.lr, config.weight_decay)
    scheduler = one_cycle(optimizer, config.lr, config.epochs * steps_per_epoch)
    n_support = supports.shape[0]
    curves = TrainingCurves()
    # 3. epochs: each step = one unlabelled batch + all supports, augmented and forwarded together
    student.train()
    for _ in range(config.epochs):
        order = torch.randperm(n_unlabelled, generator=generator)
        batches = order.split(config.batch_size) if n_unlabelled else [order]
        kd_sum = support_sum = 0.0
        for batch in batches:
            images = supports if unlabelled is None else torch.cat([supports, unlabelled[batch]])
            logits = student(random_affine(images, config.augment, generator))  # (n_support + b, n_way)
            support_loss = F.cross_entropy(logits[:n_support], support_labels)
            loss = config.support_weight * support_loss
            if unlabelled is not None:
                distill_loss = kd_loss(logits[n_support:], teacher_logits[batch], config.temperature)
                loss = loss + distill_loss
                kd_sum += distill_loss.item()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            support_sum += support_loss.item()
        curves.add(kd_loss=kd_sum / steps_per_epoch, support_loss=support_sum / steps_per_epoch)
        if eval_images is not None and eval_labels is not None:
            curves.add(eval_accuracy=episode_accuracy(student.predict(eval_images), eval_labels))
    student.eval()
    return curves


def train_student(
    config: StudentConfig,
    supports: torch.Tensor,
    support_labels: torch.Tensor,
    distill_config: DistillConfig,
    unlabelled: torch.Tensor | Sequence[str] | None = None,
    teacher_logits: torch.Tensor | None = None,
) -> tuple[Student, TrainingCurves]:
    """Build a student, initialise its head from support prototypes, then :func:`distill` it."""
    student = create_student(config, n_way=int(support_labels.max()) + 1)
    student.init_head_from_prototypes(supports, support_labels)
    curves = distill(student, supports, support_labels, distill_config, unlabelled, teacher_logits)
    return student, curves
