"""Base-class pre-training of a backbone (teacher or student): cross-entropy on the base split.

Option ``dihedral_classes`` treats each of the 8 rotations/reflections of a base class as a class of its own
(5 digit classes → 40 classes). Features that must tell "2" from "2 rotated by 90°" learn stroke layout rather than
the five shortcuts that separate five classes, and they transfer to novel classes far better (see docs/fewshot.md).
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

from tint_core.fewshot.augment import random_affine
from tint_core.fewshot.backbones import FeatureExtractor
from tint_core.fewshot.config import PretrainConfig
from tint_core.fewshot.training import TrainingCurves, make_optimizer, one_cycle
from tint_core.images import check_image_batch, resize
from tint_core.stopping import check_stop

logger = logging.getLogger(__name__)


def dihedral_expand(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The 8 dihedral transforms of every image as new classes.

    Args:
        images: (B, C, H, W) with H = W.
        labels: (B,) in 0..n-1.

    Returns:
        (8B, C, H, W) images and (8B,) labels ``8 · label + transform``.
    """
    if images.shape[-1] != images.shape[-2]:
        raise ValueError(f"dihedral classes need square images, got {tuple(images.shape[-2:])}")
    views, classes = [], []
    for transform in range(8):
        view = torch.rot90(images, transform % 4, dims=(-2, -1))
        views.append(view.flip(-1) if transform >= 4 else view)
        classes.append(labels * 8 + transform)
    return torch.cat(views), torch.cat(classes)


def pretrain_on_base(
    extractor: FeatureExtractor, images: torch.Tensor, labels: torch.Tensor, config: PretrainConfig
) -> TrainingCurves:
    """Train ``extractor`` in place, on its device and in its precision, with a temporary linear head; the head is
    discarded afterwards. The images stay where they are; each batch goes to the device.

    Args:
        extractor: the backbone to train (its input size is used).
        images: (B, 3, H, W) base-class images in [0, 1].
        labels: (B,) int64 class indices.
        config: schedule, optimiser, augmentation.

    Returns:
        Per-epoch ``loss`` and ``train_accuracy`` (on augmented images).
    """
    # 1. check inputs and build the training set once, at the backbone's input size
    check_image_batch(images)
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
    generator = torch.Generator().manual_seed(config.seed)
    images = resize(images, extractor.input_size)
    if config.dihedral_classes:
        images, labels = dihedral_expand(images, labels)
    n_classes = int(labels.max()) + 1
    # 2. temporary head, optimiser, schedule
    # built without drawing from torch's global RNG, which steps in other threads may hold seeded (tint_core.seeding)
    head = nn.Linear(extractor.num_features, n_classes, device="meta").to_empty(device="cpu")
    with torch.no_grad():
        head.weight.normal_(0, 0.01, generator=generator)
        head.bias.zero_()
    device = extractor.device
    head.to(device)
    params = [*extractor.parameters(), *head.parameters()]
    optimizer = make_optimizer(params, config.optimizer, config.lr, config.weight_decay)
    steps_per_epoch = math.ceil(len(images) / config.batch_size)
    scheduler = one_cycle(optimizer, config.lr, config.epochs * steps_per_epoch)
    # 3. epochs
    curves = TrainingCurves()
    extractor.train()
    for epoch in range(config.epochs):
        order = torch.randperm(len(images), generator=generator)
        loss_sum, correct = 0.0, 0
        for batch in order.split(config.batch_size):
            check_stop()
            x = random_affine(images[batch].to(device), config.augment, generator)
            targets = labels[batch].to(device)
            logits = head(extractor(x))  # (b, n_classes)
            loss = F.cross_entropy(logits, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.item() * len(batch)
            correct += int((logits.argmax(1) == targets).sum())
        curves.add(loss=loss_sum / len(images), train_accuracy=correct / len(images))
        logger.info("pre-training epoch %d: loss %.4f", epoch, curves.last("loss"))
    extractor.eval()
    return curves
