"""Test data for the diffusion engine."""

import torch

from tests.figures import FIGURES


def smooth_images(count: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Smooth random images (upsampled 4×4 noise), more like photos than pixel noise: (count, 3, size, size)."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, 4, 4, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)


def assert_adam_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Parameters optimised by Adam from the same start, batched vs alone.

    Batch size changes float rounding; Adam divides by sqrt(v), so elements whose gradient is
    almost zero can take a visibly different step. Nearly all elements must agree closely.
    """
    difference = (actual - expected).abs()
    assert float(difference.max()) < 1e-2, float(difference.max())
    assert float(difference.mean()) < 1e-5, float(difference.mean())


figures: list[str] = FIGURES["diffusion figures"]  # printed at the end of the session
