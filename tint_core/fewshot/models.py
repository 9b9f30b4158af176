"""Small backbones registered with timm, so ``timm.create_model`` builds them like any other architecture.

- ``resnet12``: the standard few-shot ResNet-12 (four residual stages of three 3×3 convolutions, widths
  64-160-320-640, LeakyReLU(0.1), 2×2 max-pooling after each stage); ``resnet12_tiny`` has widths 8-16-32-64.
- ``tint_convnet``: a five-layer VGG-style network for small images whose ``global_pool="flatten"`` keeps the
  spatial layout of the last feature map (useful on digits, where stroke positions carry the class);
  ``tint_convnet_tiny`` is its width-8 variant for tests.

- ``tint_pixels``: no parameters, the flattened pixels in [0, 1] as features (the raw-pixel baseline).

All follow timm's interface (``num_features``, ``forward_features``, ``forward_head(pre_logits)``,
``reset_classifier``) and have no pretrained weights: ``pretrained=True`` is refused.
"""

from __future__ import annotations

from typing import Any

import torch
from timm.models import register_model
from torch import nn

_CFG = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "classifier": "fc"}


class _TimmLike(nn.Module):
    """Shared head logic: pooling to ``num_features`` and an optional linear classifier named ``fc``."""

    def __init__(self, num_features: int, num_classes: int, global_pool: str, pretrained_cfg: dict):
        super().__init__()
        if global_pool not in ("avg", "flatten"):
            raise ValueError(f"global_pool must be 'avg' or 'flatten', got {global_pool!r}")
        self.global_pool, self.num_features, self.num_classes = global_pool, num_features, num_classes
        self.fc: nn.Module = nn.Linear(num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.pretrained_cfg = self.default_cfg = pretrained_cfg

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None and global_pool != self.global_pool:
            raise ValueError("changing global_pool after construction would change num_features; rebuild instead")
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean((2, 3)) if self.global_pool == "avg" else x.flatten(1)  # (b, num_features)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class _ResidualStage(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(3):
            layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out)]
            if i < 2:
                layers.append(nn.LeakyReLU(0.1))
        self.body = nn.Sequential(*layers)
        self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.out = nn.Sequential(nn.LeakyReLU(0.1), nn.MaxPool2d(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x) + self.shortcut(x))


class ResNet12(_TimmLike):
    """ResNet-12 for few-shot learning; an H×W input gives an (H/16)×(W/16) map of ``widths[-1]`` channels."""

    def __init__(
        self,
        widths: tuple[int, ...] = (64, 160, 320, 640),
        num_classes: int = 1000,
        global_pool: str = "avg",
        img_size: int = 84,
        in_chans: int = 3,
    ):
        side = img_size // 2 ** len(widths)
        super().__init__(widths[-1] * (side * side if global_pool == "flatten" else 1), num_classes, global_pool,
                         {**_CFG, "input_size": (3, img_size, img_size)})
        channels = (in_chans, *widths)
        self.stages = nn.Sequential(*(_ResidualStage(a, b) for a, b in zip(channels[:-1], channels[1:], strict=True)))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="leaky_relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class ConvNet(_TimmLike):
    """Five 3×3 conv layers (width w, w, pool, 2w, 2w, pool, 4w); an H×W input gives an (H/4)×(W/4) map."""

    def __init__(
        self, width: int = 32, num_classes: int = 1000, global_pool: str = "flatten", img_size: int = 16,
        in_chans: int = 3,
    ):
        side = img_size // 4
        super().__init__(4 * width * (side * side if global_pool == "flatten" else 1), num_classes, global_pool,
                         {**_CFG, "input_size": (3, img_size, img_size)})
        w = width
        self.body = nn.Sequential(
            _conv_bn_relu(in_chans, w), _conv_bn_relu(w, w), nn.MaxPool2d(2),
            _conv_bn_relu(w, 2 * w), _conv_bn_relu(2 * w, 2 * w), nn.MaxPool2d(2),
            _conv_bn_relu(2 * w, 4 * w),
        )  # fmt: skip

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Pixels(_TimmLike):
    """The image itself, flattened: (B, 3, S, S) → (B, 3·S²). Normalisation is the identity (mean 0, std 1)."""

    def __init__(self, num_classes: int = 0, global_pool: str = "flatten", img_size: int = 16, in_chans: int = 3):
        cfg = {**_CFG, "mean": (0.0,) * 3, "std": (1.0,) * 3, "input_size": (in_chans, img_size, img_size)}
        super().__init__(in_chans * img_size * img_size, num_classes, global_pool, cfg)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _build(cls: type[nn.Module], pretrained: bool, kwargs: dict[str, Any], **defaults: Any) -> nn.Module:
    if pretrained:
        raise ValueError(f"{cls.__name__} has no published weights; pass a local weights file instead")
    for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):  # added by timm.create_model
        kwargs.pop(key, None)
    return cls(**{**defaults, **kwargs})


@register_model
def resnet12(pretrained: bool = False, **kwargs: Any) -> ResNet12:
    """ResNet-12, widths 64-160-320-640."""
    return _build(ResNet12, pretrained, kwargs)


@register_model
def resnet12_tiny(pretrained: bool = False, **kwargs: Any) -> ResNet12:
    """ResNet-12, widths 8-16-32-64, for tests."""
    return _build(ResNet12, pretrained, kwargs, widths=(8, 16, 32, 64))


@register_model
def tint_convnet(pretrained: bool = False, **kwargs: Any) -> ConvNet:
    """Five-layer ConvNet, width 32, spatial (flattened) features."""
    return _build(ConvNet, pretrained, kwargs)


@register_model
def tint_convnet_tiny(pretrained: bool = False, **kwargs: Any) -> ConvNet:
    """Five-layer ConvNet, width 8, for tests."""
    return _build(ConvNet, pretrained, kwargs, width=8)


@register_model
def tint_pixels(pretrained: bool = False, **kwargs: Any) -> Pixels:
    """Raw pixels as features (no parameters)."""
    return _build(Pixels, pretrained, kwargs)
