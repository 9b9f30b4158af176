"""Test data for the diffusion engine."""

import torch


def smooth_images(count: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Smooth random images (upsampled 4×4 noise), more like photos than pixel noise: (count, 3, size, size)."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, 4, 4, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
