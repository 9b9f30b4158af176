"""Distillation of a student from teacher soft labels on unlabelled (synthetic) images plus its supports.

loss = T² · KL(softmax(teacher / T) ‖ softmax(student / T)) on unlabelled images
       + support_weight · cross-entropy on the labelled supports.

Unlabelled images are generic: TINT or TI-only synthetic images, augmented supports, or any real pool, as a
(M, 3, H, W) tensor or a list of image paths. Without them the same loop trains on the supports alone (the
supports-only baseline). Every method trains for the same number of steps (``DistillConfig.steps``), with the same
optimiser, schedule and augmentation: each step runs all supports and, if there are any, a batch of unlabelled
images through the student as one batch, so methods differ only in the images they add.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

from tint_core.data.datasets import load_images
from tint_core.fewshot.augment import random_affine
from tint_core.fewshot.config import DistillConfig, StudentConfig
from tint_core.fewshot.student import Student, create_student
from tint_core.fewshot.teacher import check_support_set
from tint_core.fewshot.training import TrainingCurves, make_optimizer, one_cycle
from tint_core.images import check_image_batch, resize
from tint_core.stopping import check_stop

logger = logging.getLogger(__name__)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · KL(softmax(teacher/T) ‖ softmax(student/T)), averaged over the batch; both (B, n_way)."""
    t = temperature
    return F.kl_div(
        F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
        reduction="batchmean", log_target=True,
    ) * (t * t)  # fmt: skip


def unlabelled_batches(n_images: int, batch_size: int, steps: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """``steps`` index batches of ``min(batch_size, n_images)`` images each: passes over the images in a fresh
    shuffled order, a batch running on into the next pass, so that every step sees as many images."""
    size = min(batch_size, n_images)
    pending = torch.empty(0, dtype=torch.long)
    for _ in range(steps):
        while len(pending) < size:
            pending = torch.cat([pending, torch.randperm(n_images, generator=generator)])
        batch, pending = pending[:size], pending[size:]
        yield batch


def distill(
    student: Student,
    supports: torch.Tensor,
    support_labels: torch.Tensor,
    config: DistillConfig,
    unlabelled: torch.Tensor | Sequence[str] | None = None,
    teacher_logits: torch.Tensor | None = None,
) -> TrainingCurves:
    """Train ``student`` in place for ``config.steps`` steps.

    Every step forwards all supports (cross-entropy) and, given unlabelled images, a batch of them (T²·KL to the
    teacher) through the student as one augmented batch; without them the same steps train on the supports alone.

    Args:
        student: with its head already initialised (e.g. from support prototypes).
        supports: (N·K, 3, H, W) in [0, 1]; support_labels: (N·K,) int64.
        config: budget, schedule, loss and augmentation.
        unlabelled: (M, 3, H, W) images in [0, 1] or M local image paths; None trains on supports only.
        teacher_logits: (M, n_way) teacher logits of ``unlabelled`` (required with it).

    Returns:
        Per-step ``support_loss`` and, with unlabelled images, ``kd_loss``; ``steps`` counts the optimiser's steps.
    """
    # 1. check inputs; bring every image to the student's device and input size once
    check_support_set(supports, support_labels)
    size, device = student.extractor.input_size, student.extractor.device
    supports, support_labels = resize(supports.to(device), size), support_labels.to(device)
    if unlabelled is not None:
        if not isinstance(unlabelled, torch.Tensor):
            unlabelled = load_images(list(unlabelled), size=size)[0]
        check_image_batch(unlabelled, "unlabelled images")
        if teacher_logits is None or teacher_logits.shape != (unlabelled.shape[0], student.n_way):
            shape = None if teacher_logits is None else tuple(teacher_logits.shape)
            raise ValueError(f"teacher_logits must have shape ({unlabelled.shape[0]}, {student.n_way}), got {shape}")
        unlabelled, teacher_logits = resize(unlabelled.to(device), size), teacher_logits.to(device)
    # 2. optimiser and schedule over the whole budget; every random draw from one CPU generator, whatever the device
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = make_optimizer(student.parameters(), config.optimizer, config.lr, config.weight_decay)
    scheduler = one_cycle(optimizer, config.lr, config.steps)
    n_support = supports.shape[0]
    batches = None if unlabelled is None else unlabelled_batches(len(unlabelled), config.batch_size, config.steps,
                                                                 generator)  # fmt: skip
    curves = TrainingCurves()
    # 3. steps: all supports (+ an unlabelled batch), augmented and forwarded together
    student.train()
    for _ in range(config.steps):
        check_stop()
        batch = None if batches is None else next(batches).to(device)
        images = supports if batch is None else torch.cat([supports, unlabelled[batch]])
        logits = student(random_affine(images, config.augment, generator))  # (n_support + b, n_way)
        support_loss = F.cross_entropy(logits[:n_support], support_labels)
        loss = config.support_weight * support_loss
        values = {"support_loss": support_loss.item()}
        if batch is not None:
            distill_loss = kd_loss(logits[n_support:], teacher_logits[batch], config.temperature)
            loss = loss + distill_loss
            values["kd_loss"] = distill_loss.item()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        curves.step(**values)
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
