"""Batched, seeded image augmentation: one random affine map per image, applied in a single ``grid_sample``.

torchvision's transforms draw from the global RNG and share parameters across a batch; here every image gets its
own random resized crop, rotation, shear and flip from an explicit ``torch.Generator``, without a Python loop
over images, so training stays deterministic and batched.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from tint_core.fewshot.config import AugmentConfig


def random_affine(images: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Augment each image with its own random affine map.

    Args:
        images: (B, C, H, W) float batch.
        config: the ranges to draw from.
        generator: source of all randomness (CPU generator; parameters are drawn on the CPU).

    Returns:
        (B, C, H, W) augmented batch, same dtype and device.
    """
    if config.crop_scale_min > config.crop_scale_max:
        raise ValueError(f"crop_scale_min {config.crop_scale_min} exceeds crop_scale_max {config.crop_scale_max}")
    b = images.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(b, generator=generator)

    # 1. crop size: area fraction and aspect ratio → half-extents (sx, sy) in normalised coordinates
    area = uniform(config.crop_scale_min, config.crop_scale_max)
    log_ratio = uniform(-math.log(config.crop_ratio), math.log(config.crop_ratio))
    sx = (area * log_ratio.exp()).sqrt().clamp(max=1.0)
    sy = (area / log_ratio.exp()).sqrt().clamp(max=1.0)
    # 2. crop centre: anywhere that keeps the crop inside the image
    cx = uniform(-1.0, 1.0) * (1 - sx)
    cy = uniform(-1.0, 1.0) * (1 - sy)
    # 3. rotation, shear and flip act on the crop's own frame
    angle = uniform(-1.0, 1.0) * math.radians(config.rotation_degrees)
    shear = (uniform(-1.0, 1.0) * math.radians(config.shear_degrees)).tan()
    flip = torch.where(torch.rand(b, generator=generator) < config.hflip_probability, -1.0, 1.0)
    cos, sin = angle.cos(), angle.sin()
    # theta maps output coordinates to input coordinates: centre + R · diag(sx, sy) · [[flip, shear], [0, 1]]
    a11, a12 = cos * sx * flip, cos * sx * shear - sin * sy
    a21, a22 = sin * sx * flip, sin * sx * shear + cos * sy
    theta = torch.stack([torch.stack([a11, a12, cx], 1), torch.stack([a21, a22, cy], 1)], 1)  # (b, 2, 3)
    theta = theta.to(device=images.device, dtype=images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode=config.padding, align_corners=False)
