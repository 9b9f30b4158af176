"""Training a small latent diffusion model on the dataset's base classes, as a cached pipeline step.

The artifact holds the trained weights and every component's configuration; :func:`export_backbone` writes it out as
a diffusers checkpoint folder, which ``load_backbone(folder)`` (and ``BackboneConfig.source``) accepts.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from tint_core.diffusion.config import DigitsBackboneConfig
from tint_core.pipeline.data import open_dataset
from tint_core.pipeline.resources import open_store
from tint_core.pipeline.step import Output, Step
from tint_core.progress import ProgressFn
from tint_core.store import ArtifactRef, ArtifactStore

logger = logging.getLogger("tint_core.pipeline")

TRAIN_DIFFUSION = Step("train_diffusion", 1)
MODULES = ("unet", "vae", "text_encoder")


def _training_output(dataset: ArtifactRef, training: DigitsBackboneConfig, image_size: int) -> Output:
    return TRAIN_DIFFUSION.output({"training": training, "image_size": image_size}, {"dataset": dataset})


def diffusion_training_keys(store: str, dataset: ArtifactRef, training_config: DigitsBackboneConfig,
                            image_size: int) -> list[str]:  # fmt: skip
    """Key of a latent diffusion model trained on the dataset's base split."""
    return [_training_output(dataset, training_config, image_size).key]


def train_diffusion(store: str, dataset: ArtifactRef, training_config: DigitsBackboneConfig, image_size: int,
                    progress: ProgressFn | None = None) -> ArtifactRef:  # fmt: skip
    """Train the digits-style latent diffusion model on the base split, captioned with the class names.

    Returns:
        A reference to an artifact with one tensors part per module (``unet``, ``vae``, ``text_encoder``, half
        precision) and ``configs`` (JSON: each module's configuration and the scheduler's).
    """
    opened = open_store(store)

    def compute() -> dict[str, object]:
        from tint_core.diffusion.digits_backbone import train_digits_backbone  # diffusers: only when training

        images, labels, names = open_dataset(opened, dataset).load_split("base", size=image_size)
        components = train_digits_backbone(images, labels, names, training_config, progress)
        parts: dict[str, object] = {
            name: {key: value.half().contiguous() for key, value in components[name].state_dict().items()}
            for name in MODULES
        }
        configs = {name: dict(components[name].config) for name in ("unet", "vae", "scheduler")}
        configs["text_encoder"] = components["text_encoder"].config.to_dict()
        parts["configs"] = json.loads(json.dumps(configs, default=list))  # tuples and the like as JSON lists
        return parts

    return _training_output(dataset, training_config, image_size).ensure(opened, compute)


def export_backbone(store: ArtifactStore, ref: ArtifactRef, folder: str | Path) -> Path:
    """Write a trained model as a diffusers checkpoint folder (replacing the folder as a whole, never half-way)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from tint_core.diffusion.digits_backbone import save_components
    from tint_core.diffusion.random_backbones import tiny_tokenizer

    artifact = store.get(ref)
    configs = artifact["configs"]
    unet = UNet2DConditionModel.from_config(configs["unet"])
    vae = AutoencoderKL.from_config(configs["vae"])
    text_encoder = CLIPTextModel(CLIPTextConfig(**configs["text_encoder"]))
    for name, module in (("unet", unet), ("vae", vae), ("text_encoder", text_encoder)):
        module.load_state_dict({key: value.float() for key, value in artifact[name].items()}, strict=True)
    components = {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tiny_tokenizer(),
                  "scheduler": DDIMScheduler.from_config(configs["scheduler"])}  # fmt: skip
    folder = Path(folder).expanduser()
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    save_components(components, staging)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(staging, folder)
    logger.info("exported the trained backbone %s to %s", ref.key[:12], folder)
    return folder
