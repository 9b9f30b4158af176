"""Strongly augmented copies of support images: the ``augmented_supports`` control (what augmentation alone buys).

torchvision's v2 transforms (random resized crop, affine, elastic, colour) make each copy; they draw from torch's
global RNG, so every class is augmented under its own seed, one thread at a time
(:func:`tint_core.seeding.global_rng_seeded`): the same supports and seed always give the same copies.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from tint_core.fewshot.config import StrongAugmentConfig
from tint_core.images import check_image_batch
from tint_core.seeding import derive_seed, global_rng_seeded


def strong_transform(config: StrongAugmentConfig, size: tuple[int, int]) -> v2.Compose:
    """The v2 pipeline of ``config`` for (3, H, W) float images in [0, 1] of ``size`` (H, W)."""
    transforms: list[v2.Transform] = [
        v2.RandomResizedCrop(size, scale=(config.crop_scale_min, 1.0), antialias=True),
        v2.RandomAffine(degrees=config.rotation_degrees, translate=(config.translate, config.translate),
                        shear=config.shear_degrees),  # fmt: skip
    ]
    if config.elastic_alpha > 0:
        transforms.append(v2.ElasticTransform(alpha=config.elastic_alpha, sigma=config.elastic_sigma))
    if config.brightness or config.contrast or config.saturation or config.hue:
        transforms.append(v2.ColorJitter(config.brightness, config.contrast, config.saturation, config.hue))
    if config.hflip_probability > 0:
        transforms.append(v2.RandomHorizontalFlip(config.hflip_probability))
    return v2.Compose(transforms)


def augmented_copies(supports: torch.Tensor, count: int, config: StrongAugmentConfig,
                     seed: int | str) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """``count`` augmented copies of one class's supports, cycling through them.

    Args:
        supports: (K, 3, H, W) images in [0, 1].
        count: copies to make; copy i comes from support i mod K.
        config: the transforms.
        seed: seeds every random draw (e.g. derived from the class's supports and a root seed).

    Returns:
        (count, 3, H, W) copies in [0, 1], and (count,) the index of each copy's support.
    """
    check_image_batch(supports, "supports")
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    source = torch.arange(count) % supports.shape[0]
    transform = strong_transform(config, tuple(supports.shape[-2:]))
    with global_rng_seeded(derive_seed("augmented_supports", seed)):
        copies = torch.stack([transform(supports[index]) for index in source.tolist()])
    return copies.clamp(0, 1), source
