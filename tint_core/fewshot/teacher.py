"""The teacher: a prototype head (cosine, scale τ) over a frozen backbone, optionally fine-tuned on supports.

``process_support_set(images, labels)`` then ``forward(queries) → (n_query, n_way)`` logits, as in easyfsl.
Features are optionally centred (minus a fixed vector, e.g. the mean base-class feature) before L2
normalisation: centring removes the direction all images share, which otherwise dominates cosine similarity.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from tint_core.fewshot.augment import random_affine
from tint_core.fewshot.backbones import FeatureExtractor
from tint_core.fewshot.config import TeacherConfig
from tint_core.images import check_image_batch
from tint_core.stopping import check_stop

logger = logging.getLogger(__name__)


def class_prototypes(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean L2-normalised feature per class.

    Args:
        features: (n, D).
        labels: (n,) in 0..n_way-1, every class present.

    Returns:
        (n_way, D) prototypes (not re-normalised).
    """
    n_way = int(labels.max()) + 1
    counts = torch.bincount(labels, minlength=n_way)
    if bool((counts == 0).any()):
        raise ValueError(f"labels must cover 0..{n_way - 1}; missing {torch.nonzero(counts == 0).flatten().tolist()}")
    sums = torch.zeros(n_way, features.shape[1], dtype=features.dtype, device=features.device)
    sums.index_add_(0, labels, F.normalize(features, dim=1))
    return sums / counts.unsqueeze(1).to(features.dtype)


class PrototypeTeacher(nn.Module):
    """Cosine-prototype classifier over a feature extractor.

    The extractor computes on its own device and precision; features, prototypes and logits are float32 on the CPU.

    Args:
        extractor: the backbone (kept frozen unless :meth:`finetune` is called).
        scale: τ.
        centre: optional (D,) vector subtracted from every feature before normalisation.
    """

    def __init__(self, extractor: FeatureExtractor, scale: float = 10.0, centre: torch.Tensor | None = None):
        super().__init__()
        self.extractor, self.scale = extractor, scale
        self.register_buffer("centre", centre if centre is not None else torch.zeros(extractor.num_features))
        self.register_buffer("prototypes", torch.empty(0))
        self.extractor.requires_grad_(False).eval()

    @classmethod
    def from_config(cls, config: TeacherConfig, centre: torch.Tensor | None = None) -> PrototypeTeacher:
        """The configured teacher, its extractor on ``config.compute``'s device and precision."""
        return cls(FeatureExtractor.from_config(config.backbone, config.compute), config.scale, centre)

    def features(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Centred, L2-normalised features (B, D) of (B, 3, H, W) images, in eval mode."""
        features = self.extractor.embed(images, batch_size)
        return F.normalize(features - self.centre.to(features.device), dim=1)

    def process_support_set(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Store one prototype per class from (n_support, 3, H, W) images and (n_support,) labels."""
        check_support_set(images, labels)
        self.prototypes = F.normalize(class_prototypes(self.features(images), labels), dim=1)  # (n_way, D)

    def forward(self, queries: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Logits τ · cos(query, prototype): (n_query, 3, H, W) → (n_query, n_way)."""
        if self.prototypes.numel() == 0:
            raise RuntimeError("call process_support_set before forward")
        features = self.features(queries, batch_size)
        return self.scale * features @ self.prototypes.to(features.device).T

    def finetune(self, images: torch.Tensor, labels: torch.Tensor, config: TeacherConfig) -> list[float]:
        """Fine-tune the backbone on augmented supports (P>M>F style), then recompute the prototypes.

        Each step draws two augmented views of every support; prototypes come from the first, the second is
        classified against them with cross-entropy. Batch-norm statistics stay frozen: a support set is too small
        to estimate them.

        Returns:
            The loss of every step.
        """
        check_support_set(images, labels)
        generator = torch.Generator().manual_seed(config.seed)
        backbone = self.extractor
        device = backbone.device
        views_of, targets, centre = torch.cat([images, images]).to(device), labels.to(device), self.centre.to(device)
        backbone.requires_grad_(True)
        optimizer = torch.optim.AdamW(backbone.parameters(), lr=config.finetune_lr)
        losses = []
        for _ in range(config.finetune_steps):
            check_stop()
            views = random_affine(views_of, config.finetune_augment, generator)
            features = F.normalize(backbone(views) - centre, dim=1)  # (2n, D)
            support, query = features.chunk(2)
            prototypes = F.normalize(class_prototypes(support, targets), dim=1)
            loss = F.cross_entropy(self.scale * query @ prototypes.T, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        backbone.requires_grad_(False).eval()
        self.process_support_set(images, labels)
        return losses

    @torch.no_grad()
    def soft_labels(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Teacher logits (M, n_way) for (M, 3, H, W) images, e.g. synthetic ones, ``batch_size`` at a time."""
        return self(images, batch_size)


class TeacherClassifier(nn.Module):
    """An adapted teacher as one plain forward pass, (B, 3, H, W) in [0, 1] → (B, n_way) logits on its extractor's
    device: what :meth:`PrototypeTeacher.forward` computes (batch by batch, its head on the CPU), as one module to
    export or time.

    It shares the teacher's extractor and holds its centre and prototypes.
    """

    def __init__(self, teacher: PrototypeTeacher):
        super().__init__()
        if teacher.prototypes.numel() == 0:
            raise RuntimeError("the teacher has no prototypes: call process_support_set first")
        self.extractor, self.scale = teacher.extractor, teacher.scale
        device = teacher.extractor.device
        self.register_buffer("centre", teacher.centre.to(device))
        self.register_buffer("prototypes", teacher.prototypes.to(device))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = F.normalize(self.extractor(images) - self.centre, dim=1)
        return self.scale * features @ self.prototypes.T


def check_support_set(images: torch.Tensor, labels: torch.Tensor) -> None:
    """Raise ValueError unless images are a (n, 3, H, W) batch in [0, 1] and labels are (n,) int64."""
    check_image_batch(images, "support images")
    if labels.shape != (images.shape[0],) or labels.dtype != torch.long:
        got = f"{labels.dtype} {tuple(labels.shape)}"
        raise ValueError(f"labels must be int64 of shape ({images.shape[0]},), got {got}")
