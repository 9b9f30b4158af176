"""Image conversions shared by the whole library.

Convention: an image is a float tensor in [0, 1], shape (3, H, W); a batch is (B, 3, H, W).
Any PIL mode (grayscale, RGBA, palette, CMYK, 16-bit) is converted to RGB; alpha is composited
on white because transparent regions of product/object photos are background.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError


class ImageReadError(ValueError):
    """An image file could not be decoded; ``source`` names it."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"cannot read image {source}: {reason}")
        self.source = source


def pil_to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB (alpha composited on white)."""
    if image.mode == "RGB":
        return image
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if array.max() > 255 else 255.0
        image = Image.fromarray((array / peak * 255).round().astype(np.uint8))
    return image.convert("RGB")


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL image of any mode → float tensor (3, H, W) in [0, 1]."""
    array = np.asarray(pil_to_rgb(image), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """Float tensor (3, H, W) in [0, 1] → RGB PIL image (rounded to 8 bits)."""
    check_image(image, name="image")
    array = image.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array, mode="RGB")


def load_image(source: str | Path | bytes | BinaryIO, name: str | None = None) -> torch.Tensor:
    """Decode an image file, path or bytes into a (3, H, W) tensor in [0, 1].

    Raises:
        ImageReadError: the data is not a decodable image; the message names ``name`` or the path.
    """
    label = name or (str(source) if isinstance(source, (str, Path)) else "<bytes>")
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with Image.open(stream) as image:
            image.load()
            return pil_to_tensor(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(label, str(error) or type(error).__name__) from error


def encode_png(image: torch.Tensor) -> bytes:
    """(3, H, W) tensor in [0, 1] → lossless 8-bit PNG bytes."""
    buffer = io.BytesIO()
    tensor_to_pil(image).save(buffer, format="PNG")
    return buffer.getvalue()


def decode_png(data: bytes) -> torch.Tensor:
    """PNG (or any image) bytes → (3, H, W) tensor in [0, 1]."""
    return load_image(data)


def check_image(image: torch.Tensor, name: str = "image") -> None:
    """Raise ValueError unless ``image`` is a float (3, H, W) tensor in [0, 1]."""
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"{name} must have shape (3, H, W), got {tuple(image.shape)}")
    _check_float_unit_range(image, name)


def check_image_batch(images: torch.Tensor, name: str = "images") -> None:
    """Raise ValueError unless ``images`` is a non-empty float (B, 3, H, W) tensor in [0, 1]."""
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{name} must have shape (B, 3, H, W), got {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    _check_float_unit_range(images, name)


def _check_float_unit_range(images: torch.Tensor, name: str) -> None:
    if not images.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [0, 1], got dtype {images.dtype} (divide uint8 by 255)")
    low, high = float(images.min()), float(images.max())
    if not (low >= 0.0 and high <= 1.0):  # also catches NaN
        raise ValueError(f"{name} must lie in [0, 1], got values in [{low:.4g}, {high:.4g}]")


def resize(images: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Antialiased bilinear resize of a (B, 3, H, W) or (3, H, W) batch to ``size`` (int = square)."""
    target = (size, size) if isinstance(size, int) else tuple(size)
    single = images.ndim == 3
    batch = images.unsqueeze(0) if single else images
    if tuple(batch.shape[-2:]) != target:
        batch = F.interpolate(batch, size=target, mode="bilinear", antialias=True, align_corners=False).clamp_(0, 1)
    return batch[0] if single else batch
