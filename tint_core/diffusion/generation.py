"""TINT sampling (SPEC §6) and the textual-inversion-only baseline.

Each image draws its support, α and noise from its own seeded stream (root seed, class name,
image index), so the images do not depend on the batch size or on which classes run together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from tint_core.diffusion.backbone import Backbone
from tint_core.diffusion.config import GenerationConfig
from tint_core.diffusion.ddim import guided_denoise
from tint_core.diffusion.prompts import class_text_embeddings, null_text_embedding
from tint_core.diffusion.specialization import ClassSpecialization
from tint_core.images import resize
from tint_core.progress import ProgressFn
from tint_core.seeding import generator
from tint_core.stopping import check_stop

Method = Literal["tint", "text_only"]


@dataclass
class GeneratedImages:
    """M synthetic images with where each came from."""

    images: torch.Tensor  # (M, 3, H, W) in [0, 1]
    labels: torch.Tensor  # (M,) index of the class in the specialisations given
    support_index: torch.Tensor  # (M,) support whose inversion steered the image (−1 for text-only)
    alpha: torch.Tensor  # (M,) noise mix used


def rms(x: torch.Tensor) -> torch.Tensor:
    """Root mean square over all but the first dimension: (B, …) → (B,)."""
    return x.pow(2).flatten(1).mean(1).sqrt()


def mix_noise(inverted: torch.Tensor, noise: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """z' = (1 − α)·z_T + α·ε, rescaled so that rms(z) = (1 − α)·rms(z_T) + α·rms(ε).

    Args:
        inverted: z_T of the chosen supports, (B, 4, h, w).
        noise: ε, (B, 4, h, w).
        alpha: (B,) in [0, 1].
    """
    a = alpha.view(-1, *([1] * (inverted.ndim - 1)))
    mixed = (1 - a) * inverted + a * noise
    target = (1 - alpha) * rms(inverted) + alpha * rms(noise)
    return mixed * (target / rms(mixed)).view_as(a)


def _draws(
    specializations: Sequence[ClassSpecialization], config: GenerationConfig, seed: int, latent_shape: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    labels, supports, alphas, noises = [], [], [], []
    for label, spec in enumerate(specializations):
        for index in range(config.images_per_class):
            stream = generator(seed, "generation", spec.class_name, index)
            supports.append(int(torch.randint(spec.num_supports, (1,), generator=stream)))
            alphas.append(float(torch.rand((), generator=stream)) if config.random_alpha else config.alpha)
            noises.append(torch.randn(latent_shape, generator=stream))
            labels.append(label)
    return torch.tensor(labels), torch.tensor(supports), torch.tensor(alphas), torch.stack(noises)


def generate_images(
    backbone: Backbone,
    specializations: Sequence[ClassSpecialization],
    config: GenerationConfig = GenerationConfig(),
    seed: int = 0,
    batch_size: int = 16,
    method: Method = "tint",
    progress: ProgressFn | None = None,
) -> GeneratedImages:
    """Sample ``config.images_per_class`` images of every class.

    Args:
        method: "tint" (start from the mixed noise, guided with the support's per-step null
            embeddings) or "text_only" (the TI-only baseline: pure noise, null embedding of "").
        batch_size: images per UNet batch (the UNet sees twice as many for guidance).
        progress: called with ("generation", done, total) after each batch.
    """
    # 1. check inputs
    if not specializations:
        raise ValueError("no class specialisations given")
    for spec in specializations:
        if spec.backbone != backbone.identity:
            raise ValueError(f"class {spec.class_name!r} was specialised on {spec.backbone}, not {backbone.identity}")
    reference = specializations[0]
    if any(spec.timesteps != reference.timesteps or spec.guidance_scale != reference.guidance_scale
           for spec in specializations):  # fmt: skip
        raise ValueError("all classes must share the inversion's timesteps and guidance scale")
    if config.output_size is not None:
        output_size = (config.output_size, config.output_size)
    else:
        sizes = {spec.support_size for spec in specializations}
        if len(sizes) != 1:
            raise ValueError(f"classes have different support sizes {sorted(sizes)}: set output_size")
        output_size = sizes.pop()

    # 2. per-image random choices, and each class's prompt embedding
    labels, supports, alphas, noise = _draws(specializations, config, seed, backbone.latent_shape)
    if method == "text_only":
        supports = torch.full_like(supports, -1)
        alphas = torch.ones_like(alphas)
    device = backbone.device
    class_text = class_text_embeddings(
        backbone,
        reference.prompt_template,
        [spec.init_word for spec in specializations],
        torch.stack([spec.token_vector for spec in specializations]),
    ).detach()  # (N, 77, width)
    offsets = torch.tensor([0] + [spec.num_supports for spec in specializations]).cumsum(0)[:-1]
    inverted = torch.cat([spec.inverted_latents for spec in specializations]).to(device)
    nulls = torch.cat([spec.null_embeddings for spec in specializations]).to(device)  # (ΣK, S, 77, width)
    empty = null_text_embedding(backbone)

    # 3. denoise and decode batch by batch
    images = []
    total = len(labels)
    for start in range(0, total, batch_size):
        check_stop()
        rows = slice(start, start + batch_size)
        text = class_text[labels[rows].to(device)]
        eps = noise[rows].to(device)
        if method == "tint":
            flat = (offsets[labels[rows]] + supports[rows]).to(device)
            z = mix_noise(inverted[flat], eps, alphas[rows].to(device))
            null = nulls[flat]
        else:
            z, null = eps, empty.expand(len(eps), -1, -1)
        z = guided_denoise(backbone, z, text, null, reference.timesteps, reference.guidance_scale)
        images.append(resize(backbone.decode(z, batch_size=batch_size), output_size).cpu())
        if progress is not None:
            progress("generation", min(start + batch_size, total), total)
    return GeneratedImages(torch.cat(images), labels, supports, alphas)


def reconstruct(backbone: Backbone, specialization: ClassSpecialization) -> torch.Tensor:
    """Guided sampling from each support's z_T with its null embeddings: (K, 3, H, W) at the working size."""
    labels = torch.zeros(specialization.num_supports, dtype=torch.long)
    text = class_text_embeddings(
        backbone, specialization.prompt_template, [specialization.init_word], specialization.token_vector[None]
    ).detach()[labels.to(backbone.device)]
    z = guided_denoise(
        backbone,
        specialization.inverted_latents.to(backbone.device),
        text,
        specialization.null_embeddings.to(backbone.device),
        specialization.timesteps,
        specialization.guidance_scale,
    )
    return backbone.decode(z).cpu()
