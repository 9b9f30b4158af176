"""timm backbones as feature extractors, with weights from a local file or the local Hugging Face cache only.

Nothing here downloads: ``pretrained=True`` is never passed to timm. A backbone is either random (tests), a
file written by :func:`save_backbone` (trained here), any timm/PyTorch state dict on disk, or ``hf-hub:<repo>``
found in the local cache.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from tint_core.devices import autocast, module_device, resolve_device
from tint_core.fewshot.config import BackboneConfig, ComputeConfig
from tint_core.fewshot.names import check_model_name
from tint_core.images import check_image_batch, resize
from tint_core.seeding import global_rng_seeded
from tint_core.stopping import check_stop

HF_PREFIX = "hf-hub:"


def resolve_weights(weights: str) -> Path:
    """Local path of a weights file; ``hf-hub:<repo>`` is looked up in the local Hugging Face cache only.

    Raises:
        FileNotFoundError: the file is missing, or the repo is not cached (the message says how to fetch it).
    """
    if weights.startswith(HF_PREFIX):
        from huggingface_hub import try_to_load_from_cache

        repo = weights[len(HF_PREFIX):]
        for filename in ("model.safetensors", "pytorch_model.bin"):
            found = try_to_load_from_cache(repo, filename)
            if isinstance(found, str):
                return Path(found)
        raise FileNotFoundError(
            f"weights {weights!r} are not in the local Hugging Face cache; on a machine with internet run "
            f"`huggingface-cli download {repo} model.safetensors` (or pass a local file)"
        )
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    return path


def read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and string metadata (empty for .pth) of a weights file."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        return load_file(str(path)), metadata
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state.get("model", state)), {}


def create_backbone(name: str, weights: str | None = None, seed: int = 0, **model_kwargs: Any) -> nn.Module:
    """A timm model without classifier (``num_classes=0``): ``model(x)`` gives (B, num_features) features.

    Args:
        name: timm model name.
        weights: see :class:`BackboneConfig`; the classifier's tensors in the file are ignored.
        seed: seeds the random initialisation (without touching the global RNG).
        model_kwargs: passed to ``timm.create_model``.

    Raises:
        ValueError: unknown name, or a weights file whose tensors do not fit the architecture.
        FileNotFoundError: missing weights.
    """
    check_model_name(name)
    state: dict[str, torch.Tensor] = {}
    if weights is not None:
        path = resolve_weights(weights)
        state, metadata = read_state_dict(path)
        if metadata.get("timm_name", name) != name:
            raise ValueError(f"{path} holds a {metadata['timm_name']!r} backbone, not {name!r}")
        # Files written by save_backbone remember how the model was built; explicit kwargs still win.
        model_kwargs = {**json.loads(metadata.get("model_kwargs", "{}")), **model_kwargs}
    import timm  # here, not above: timm brings torchvision with it, seconds a cache check should not pay

    import tint_core.fewshot.models  # noqa: F401  (registers resnet12 and tint_convnet with timm)

    with global_rng_seeded(seed):  # timm initialises from the global RNG
        model = timm.create_model(name, pretrained=False, num_classes=0, **model_kwargs)
    if weights is None:
        return model
    classifier = model.pretrained_cfg.get("classifier", "fc")
    prefixes = tuple(f"{c}." for c in ([classifier] if isinstance(classifier, str) else classifier))
    state = {k: v for k, v in state.items() if not k.startswith(prefixes)}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(f"{path} does not fit timm model {name!r} {model_kwargs or ''}: {error}") from error
    return model


def save_backbone(model: nn.Module, path: str | Path, name: str, model_kwargs: dict[str, Any] | None = None) -> None:
    """Write a classifier-free backbone (from :func:`create_backbone`) as safetensors, with its timm name and
    kwargs, so ``create_backbone(name, path)`` rebuilds it."""
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    metadata = {"timm_name": name, "model_kwargs": json.dumps(model_kwargs or {})}
    save_file(state, str(path), metadata=metadata)


class FeatureExtractor(nn.Module):
    """Images in [0, 1] → backbone features: antialiased resize, the backbone's normalisation, forward.

    The extractor computes on the device it was moved to, under its precision's autocast; features come out in
    float32 (on that device from ``forward``, on the CPU from ``embed``).

    Args:
        backbone: timm-style model returning (B, D) features.
        input_size: square side fed to the backbone.
        precision: 'fp32' or 'bf16' (forward passes under bfloat16 autocast).
    """

    def __init__(self, backbone: nn.Module, input_size: int, precision: str = "fp32"):
        super().__init__()
        self.backbone, self.input_size, self.precision = backbone, input_size, precision
        cfg = getattr(backbone, "pretrained_cfg", {}) or {}
        self.register_buffer("mean", torch.tensor(cfg.get("mean", (0.5, 0.5, 0.5))).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.get("std", (0.5, 0.5, 0.5))).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_config(cls, config: BackboneConfig, compute: ComputeConfig | None = None) -> FeatureExtractor:
        """The configured backbone on ``compute``'s device and precision (default: the CPU in fp32)."""
        compute = compute or ComputeConfig()
        extractor = cls(create_backbone(config.name, config.weights, **config.model_kwargs), config.input_size,
                        compute.precision)  # fmt: skip
        return extractor.to(resolve_device(compute.device))

    @property
    def num_features(self) -> int:
        return self.backbone.num_features

    @property
    def device(self) -> torch.device:
        return module_device(self)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] → (B, 3, S, S) normalised backbone input, on the extractor's device."""
        return (resize(images.to(self.mean.device), self.input_size) - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] → (B, D) float32 features on the extractor's device."""
        inputs = self.prepare(images)
        with autocast(inputs.device, self.precision):
            features = self.backbone(inputs)
        return features.float()

    def embed(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Eval-mode features of many images, ``batch_size`` at a time: (B, 3, H, W) → (B, D) on the CPU."""
        check_image_batch(images)
        return eval_in_batches(self, images, batch_size)


def _stoppable(module: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    check_stop()
    return module(batch)


@torch.no_grad()
def eval_in_batches(module: torch.nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``module`` in eval mode over ``images`` in chunks, each moved to the module's device, concatenated on the CPU;
    its training mode is restored after."""
    was_training = module.training
    device = module_device(module)
    module.eval()
    try:
        return torch.cat([_stoppable(module, chunk.to(device)).cpu() for chunk in images.split(batch_size)])
    finally:
        module.train(was_training)
