"""A class specialisation (learned token + per-support null-text inversion): the unit the pipeline
computes per class, stores and samples from; plus the function that computes it for many classes.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from tint_core.diffusion.backbone import Backbone
from tint_core.diffusion.config import SpecializationConfig
from tint_core.diffusion.ddim import ddim_invert
from tint_core.diffusion.null_text import null_text_invert
from tint_core.diffusion.prepare import SuperResolution, SupportImage, Swin2SRUpscaler, prepare_supports
from tint_core.diffusion.prompts import class_text_embeddings, null_text_embedding
from tint_core.diffusion.textual_inversion import train_tokens
from tint_core.progress import ProgressFn
from tint_core.seeding import derive_seed

logger = logging.getLogger(__name__)

TOKEN_FILE = "learned_embeds.safetensors"  # the name diffusers' load_textual_inversion looks for
INVERSION_FILE = "null_text_inversion.safetensors"


@dataclass
class ClassSpecialization:
    """Everything needed to sample new images of one class."""

    class_name: str
    token: str  # placeholder token name, e.g. "<dog>", used when loaded into a diffusers pipeline
    init_word: str
    prompt_template: str
    token_vector: torch.Tensor  # (width,)
    inverted_latents: torch.Tensor  # (K, 4, h, w): z_T of each support
    null_embeddings: torch.Tensor  # (K, S, 77, width)
    timesteps: list[int]
    guidance_scale: float
    support_size: tuple[int, int]  # (H, W) of the class's first support, the default output size
    latent_mse: torch.Tensor  # (K,) reconstruction error of each support in latent space
    psnr: torch.Tensor  # (K,) reconstruction PSNR (dB) of each support in image space
    backbone: str  # identity of the backbone it was computed with
    # (K, 3, H, W) in [0, 1] at the working size: each support as its null embeddings reproduce it. Kept for reports,
    # not by to_tensors / save (they hold what sampling needs), so None once loaded back.
    reconstructions: torch.Tensor | None = None

    @property
    def num_supports(self) -> int:
        return int(self.inverted_latents.shape[0])

    def to_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """Tensors and string metadata, the form stored as safetensors (nothing pickled)."""
        tensors = {
            "inverted_latents": self.inverted_latents.contiguous(),
            "null_embeddings": self.null_embeddings.contiguous(),
            "latent_mse": self.latent_mse.contiguous(),
            "psnr": self.psnr.contiguous(),
        }
        metadata = {
            "class_name": self.class_name,
            "token": self.token,
            "init_word": self.init_word,
            "prompt_template": self.prompt_template,
            "timesteps": json.dumps(self.timesteps),
            "guidance_scale": repr(self.guidance_scale),
            "support_size": json.dumps(list(self.support_size)),
            "backbone": self.backbone,
        }
        return tensors, metadata

    @classmethod
    def from_tensors(
        cls, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str], token_vector: torch.Tensor
    ) -> ClassSpecialization:
        """Inverse of ``to_tensors``."""
        return cls(
            class_name=metadata["class_name"],
            token=metadata["token"],
            init_word=metadata["init_word"],
            prompt_template=metadata["prompt_template"],
            token_vector=token_vector,
            inverted_latents=tensors["inverted_latents"],
            null_embeddings=tensors["null_embeddings"],
            timesteps=[int(t) for t in json.loads(metadata["timesteps"])],
            guidance_scale=float(metadata["guidance_scale"]),
            support_size=tuple(json.loads(metadata["support_size"])),
            latent_mse=tensors["latent_mse"],
            psnr=tensors["psnr"],
            backbone=metadata["backbone"],
        )

    def save(self, folder: str | Path) -> Path:
        """Write ``learned_embeds.safetensors`` ({token: (1, width)}, readable by diffusers'
        ``load_textual_inversion``) and the null-text inversion as safetensors."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors, metadata = self.to_tensors()
        # Each file appears complete or not at all: written under a temporary name, then renamed.
        token_tmp, inversion_tmp = folder / f".{TOKEN_FILE}.tmp", folder / f".{INVERSION_FILE}.tmp"
        save_file({self.token: self.token_vector.reshape(1, -1).contiguous()}, token_tmp)
        save_file(tensors, inversion_tmp, metadata=metadata)
        os.replace(inversion_tmp, folder / INVERSION_FILE)
        os.replace(token_tmp, folder / TOKEN_FILE)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> ClassSpecialization:
        """Read a folder written by ``save`` (safetensors only: nothing is unpickled)."""
        folder = Path(folder)
        for name in (TOKEN_FILE, INVERSION_FILE):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder} is not a class specialisation: {name} is missing")
        tokens = load_file(folder / TOKEN_FILE)
        with safe_open(folder / INVERSION_FILE, framework="pt") as handle:
            metadata = handle.metadata()
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        if list(tokens) != [metadata["token"]]:
            raise ValueError(f"{folder}: token file holds {list(tokens)}, inversion expects {metadata['token']!r}")
        return cls.from_tensors(tensors, metadata, tokens[metadata["token"]].reshape(-1))


def token_name(class_name: str) -> str:
    """Placeholder token for a class: '<' + lower-case slug + '>' (never an existing CLIP word)."""
    slug = re.sub(r"[^a-z0-9]+", "-", class_name.lower()).strip("-")
    if not slug:
        raise ValueError(f"class name {class_name!r} has no letters or digits to name its token")
    return f"<{slug}>"


def _group_progress(progress: ProgressFn | None, number: int, count: int) -> ProgressFn | None:
    """Progress of inversion group ``number`` of ``count``, reported as one count over all groups."""
    if progress is None:
        return None
    return lambda stage, done, total: progress(stage, number * total + done, count * total)


def specialize(
    backbone: Backbone,
    supports: Mapping[str, Sequence[SupportImage]],
    config: SpecializationConfig = SpecializationConfig(),
    seed: int = 0,
    init_words: Mapping[str, str] | None = None,
    super_resolution: SuperResolution | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, ClassSpecialization]:
    """Specialise the backbone to each class: textual inversion, DDIM inversion, null-text inversion.

    Args:
        supports: class name → its support images (PIL images of any mode, or (C, H, W) tensors in [0, 1]).
        seed: root seed; each class's random stream derives from it and the class name, so a class
            gets the same result alone or within an episode.
        init_words: optional class name → one-word init word (default: ``config.textual_inversion.init_word``).
        super_resolution: optional ×4 upscaler used when preparing the supports; default: the Swin2SR model
            named by ``config.preparation.super_resolution``, if any.

    Returns:
        class name → its specialisation, in the order of ``supports``.
    """
    ti_config, nti_config = config.textual_inversion, config.null_text
    faithful = config.engine.mode == "faithful"
    # 1. check inputs before any expensive work
    if not supports:
        raise ValueError("no classes given")
    for name, images in supports.items():
        if len(images) == 0:
            raise ValueError(f"class {name!r} has no support images")
    if faithful and (backbone.dtype != torch.float32 or backbone.compiled):
        raise ValueError("faithful mode reproduces the fp32 eager reference: load the backbone with precision "
                         "'fp32' and without compile_unet")  # fmt: skip
    names = list(supports)
    tokens = [token_name(name) for name in names]
    if len(set(tokens)) != len(tokens):
        raise ValueError(f"class names collide once turned into tokens: {tokens}")
    words = [(init_words or {}).get(name, ti_config.init_word) for name in names]
    for word in words:
        backbone.word_token_id(word)

    # 2. prepare supports and encode them once
    if super_resolution is None and config.preparation.super_resolution is not None:
        super_resolution = Swin2SRUpscaler.from_pretrained(config.preparation.super_resolution, backbone.device)
    prepared = [
        prepare_supports(supports[name], backbone.working_size, super_resolution,
                         config.preparation.super_resolution_input, name=f"class {name!r}")
        for name in names
    ]  # fmt: skip
    latents = [backbone.encode(images) for images in prepared]

    # 3. textual inversion: all classes in one batch, or one class at a time re-encoding every step
    seeds = [derive_seed(seed, "textual_inversion", name) for name in names]
    if faithful:
        vectors = torch.cat([
            train_tokens(backbone, [lat], [word], [class_seed], ti_config, images=[imgs], progress=progress).vectors
            for lat, word, class_seed, imgs in zip(latents, words, seeds, prepared)
        ])  # fmt: skip
    else:
        vectors = train_tokens(
            backbone, latents, words, seeds, ti_config, progress=progress, cuda_graph=config.engine.cuda_graphs
        ).vectors

    # 4. DDIM inversion of every support with its class prompt, then null-text inversion
    timesteps = backbone.timesteps(nti_config.num_steps)
    class_text = class_text_embeddings(backbone, ti_config.prompt_template, words, vectors).detach()
    owner = torch.cat([torch.full((len(lat),), index) for index, lat in enumerate(latents)])
    support_text = class_text[owner.to(class_text.device)]
    all_latents = torch.cat(latents)
    null = null_text_embedding(backbone)
    group_size = 1 if faithful else config.engine.inversion_batch_size
    groups = [list(range(start, min(start + group_size, len(owner)))) for start in range(0, len(owner), group_size)]
    starts, results = [], []
    for number, rows in enumerate(groups):
        trajectory = ddim_invert(backbone, all_latents[rows], support_text[rows], timesteps)
        starts.append(trajectory[-1].cpu())
        results.append(null_text_invert(backbone, trajectory, support_text[rows], null, timesteps, nti_config,
                                        _group_progress(progress, number, len(groups))))  # fmt: skip
    inverted = torch.cat(starts)
    null_embeddings = torch.cat([result.null_embeddings for result in results])
    reconstructed = torch.cat([result.reconstruction for result in results])
    if not bool(torch.isfinite(reconstructed).all()):
        raise FloatingPointError("null-text inversion produced non-finite latents")

    # 5. reconstruction quality per support
    latent_mse = (reconstructed - all_latents.cpu()).pow(2).mean(dim=(1, 2, 3))
    relative = latent_mse / all_latents.cpu().var(dim=(1, 2, 3)).clamp_min(1e-12)
    decoded = backbone.decode(reconstructed.to(backbone.device)).cpu()
    image_mse = (decoded - torch.cat(prepared)).pow(2).mean(dim=(1, 2, 3))
    psnr = 10 * torch.log10(1 / image_mse.clamp_min(1e-10))
    for row in torch.nonzero(relative > nti_config.warn_relative_error).flatten().tolist():
        logger.warning(
            "support %d of class %r did not invert well: latent MSE %.3g (%.1f%% of its variance), PSNR %.1f dB",
            row - int((owner < owner[row]).sum()), names[int(owner[row])], latent_mse[row], 100 * relative[row], psnr[row],
        )  # fmt: skip

    # 6. one specialisation per class
    specializations = {}
    for index, name in enumerate(names):
        rows = owner == index
        first = supports[name][0]
        height, width = (first.height, first.width) if hasattr(first, "height") else tuple(first.shape[-2:])
        specializations[name] = ClassSpecialization(
            class_name=name,
            token=tokens[index],
            init_word=words[index],
            prompt_template=ti_config.prompt_template,
            token_vector=vectors[index].clone(),
            inverted_latents=inverted[rows],
            null_embeddings=null_embeddings[rows],
            timesteps=timesteps,
            guidance_scale=nti_config.guidance_scale,
            support_size=(int(height), int(width)),
            latent_mse=latent_mse[rows],
            psnr=psnr[rows],
            backbone=backbone.identity,
            reconstructions=decoded[rows].clamp(0, 1),
        )
        logger.info("class %r: %d supports, reconstruction PSNR %s dB", name, int(rows.sum()),
                    [round(v, 1) for v in psnr[rows].tolist()])  # fmt: skip
    return specializations
