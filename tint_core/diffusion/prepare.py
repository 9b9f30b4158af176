"""Bringing supports to the backbone's working size (SPEC §2), with an optional ×4 super-resolution."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from PIL import Image

from tint_core.images import check_image, pil_to_tensor, resize

SupportImage = torch.Tensor | Image.Image


class SuperResolution(Protocol):
    """A ×4 upscaler: (B, 3, h, w) in [0, 1] → (B, 3, 4h, 4w) in [0, 1]."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


class Swin2SRUpscaler:
    """×4 super-resolution with a transformers Swin2SR model."""

    def __init__(self, model: torch.nn.Module, batch_size: int = 4):
        if getattr(model.config, "upscale", None) != 4:
            raise ValueError(f"super-resolution model must upscale ×4, this one upscales ×{model.config.upscale}")
        self.model = model.eval().requires_grad_(False)
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, source: str, device: torch.device | str = "cpu") -> Swin2SRUpscaler:
        """Load from a local folder or the local hub cache (never downloads)."""
        from transformers import Swin2SRForImageSuperResolution

        try:
            model = Swin2SRForImageSuperResolution.from_pretrained(source, local_files_only=True, use_safetensors=True)
        except OSError as error:
            raise FileNotFoundError(
                f"super-resolution model {source!r} is neither a local folder nor in the local Hugging Face cache; "
                f"on a machine with internet run `huggingface-cli download {source}` and copy the cache here"
            ) from error
        return cls(model.to(device))

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        device = next(self.model.parameters()).device
        outputs = []
        for chunk in images.split(self.batch_size):
            upscaled = self.model(pixel_values=chunk.to(device)).reconstruction
            outputs.append(upscaled[..., : chunk.shape[-2] * 4, : chunk.shape[-1] * 4].float().clamp(0, 1).cpu())
        return torch.cat(outputs)


def as_rgb_tensor(image: SupportImage, name: str = "image") -> torch.Tensor:
    """A PIL image of any mode, or a (1|3|4, H, W) tensor in [0, 1], as a (3, H, W) float tensor.

    Grayscale is replicated, alpha is composited on white, like ``tint_core.images.pil_to_rgb``.
    """
    if isinstance(image, Image.Image):
        return pil_to_tensor(image)
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"{name} must be a PIL image or a tensor, got {type(image).__name__}")
    if image.ndim != 3:
        raise ValueError(f"{name} must have shape (C, H, W), got rank {image.ndim} {tuple(image.shape)}")
    channels = image.shape[0]
    if channels not in (1, 3, 4):
        raise ValueError(f"{name} must have 1, 3 or 4 channels, got {channels}")
    if channels == 1:
        image = image.expand(3, -1, -1)
    elif channels == 4:
        check_image(image[:3], name)
        rgb, alpha = image[:3], image[3:].clamp(0, 1)
        image = rgb * alpha + (1 - alpha)
    check_image(image, name)
    return image.float()


def prepare_supports(
    images: Sequence[SupportImage],
    size: int,
    super_resolution: SuperResolution | None = None,
    super_resolution_input: int = 128,
    name: str = "supports",
) -> torch.Tensor:
    """Supports of any size/mode → (K, 3, size, size) in [0, 1].

    Plain antialiased bilinear resize by default; with ``super_resolution``: resize to
    ``super_resolution_input``, upscale ×4, resize to ``size`` (the reference's recipe).
    """
    if len(images) == 0:
        raise ValueError(f"{name}: no images")
    tensors = [as_rgb_tensor(image, f"{name}[{index}]") for index, image in enumerate(images)]
    if super_resolution is None:
        return torch.stack([resize(image, size) for image in tensors])
    small = torch.stack([resize(image, super_resolution_input) for image in tensors])
    return resize(super_resolution(small).clamp(0, 1), size)
