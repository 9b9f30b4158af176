import pytest

from tint_core.diffusion import load_backbone
from tint_core.diffusion.backbone import Backbone


@pytest.fixture(scope="session")
def backbone() -> Backbone:
    """The tiny random backbone (32×32 images, 4×8×8 latents); algorithms never modify it."""
    return load_backbone("tiny", device="cpu")


@pytest.fixture(scope="session")
def digits_backbone() -> Backbone:
    """The latent diffusion model trained here on digits 0-4 and shipped with the package (16×16, 4×8×8)."""
    return load_backbone("digits", device="cpu")
