"""DDIM arithmetic shared by inversion and sampling (SPEC §2, §4).

All functions work on batches: every latent, text embedding and null embedding has a leading
batch dimension, so one UNet call serves many supports or images at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tint_core.diffusion.backbone import Backbone
from tint_core.stopping import check_stop


def change_timestep(
    noise: torch.Tensor, latents: torch.Tensor, alpha_from: torch.Tensor, alpha_to: torch.Tensor
) -> torch.Tensor:
    """Move latents from one timestep to another along the DDIM trajectory of ``noise``.

    z0 = (z_a − sqrt(1 − ᾱ_a)·ε) / sqrt(ᾱ_a);  z_b = sqrt(ᾱ_b)·z0 + sqrt(1 − ᾱ_b)·ε.

    Args:
        noise: ε predicted at the step, (B, 4, h, w).
        latents: z_a, (B, 4, h, w).
        alpha_from: ᾱ_a, a scalar tensor or (B,).
        alpha_to: ᾱ_b, a scalar tensor or (B,).
    """
    alpha_from = _per_sample(alpha_from, latents)
    alpha_to = _per_sample(alpha_to, latents)
    clean = (latents - (1 - alpha_from).sqrt() * noise) / alpha_from.sqrt()
    return alpha_to.sqrt() * clean + (1 - alpha_to).sqrt() * noise


def _per_sample(alpha: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return alpha.reshape(-1, *([1] * (like.ndim - 1))) if alpha.ndim else alpha


def previous_timestep(timesteps: Sequence[int], index: int) -> int:
    """The timestep after step ``index`` of a descending schedule; 0 after the last step (ᾱ_0 = alphas_cumprod[0])."""
    return timesteps[index + 1] if index + 1 < len(timesteps) else 0


def classifier_free_guidance(noise_uncond: torch.Tensor, noise_cond: torch.Tensor, scale: float) -> torch.Tensor:
    """ε = ε_u + w·(ε_c − ε_u)."""
    return noise_uncond + scale * (noise_cond - noise_uncond)


@torch.no_grad()
def ddim_invert(backbone: Backbone, latents: torch.Tensor, text: torch.Tensor, timesteps: Sequence[int]) -> torch.Tensor:
    """Deterministic DDIM inversion without guidance (SPEC §4).

    Args:
        latents: clean latents z_0, (B, 4, h, w).
        text: conditional prompt embeddings, (B, 77, width).
        timesteps: the descending sampling schedule (S steps).

    Returns:
        (S + 1, B, 4, h, w): [z_0, z_1, …, z_S]; z_S is z_T, the start of sampling.
    """
    alphas = backbone.alphas_cumprod
    trajectory = [latents.float()]
    z = trajectory[0]
    t_from = 0
    for t_to in reversed(timesteps):
        # The noise is predicted at the target timestep, as the reference does.
        noise = backbone.predict_noise(z, t_to, text)
        z = change_timestep(noise, z, alphas[t_from], alphas[t_to])
        trajectory.append(z)
        t_from = t_to
    return torch.stack(trajectory)


@torch.no_grad()
def guided_denoise(
    backbone: Backbone,
    latents: torch.Tensor,
    text: torch.Tensor,
    null_text: torch.Tensor,
    timesteps: Sequence[int],
    guidance_scale: float,
) -> torch.Tensor:
    """DDIM sampling with classifier-free guidance and per-sample, per-step null embeddings.

    Args:
        latents: z_T, (B, 4, h, w).
        text: conditional prompt embeddings, (B, 77, width).
        null_text: unconditional embeddings, (B, S, 77, width) — one per sample and step — or
            (B, 77, width) used at every step.
        timesteps: the descending schedule (S steps).

    Returns:
        Clean latents (B, 4, h, w).
    """
    alphas = backbone.alphas_cumprod
    z = latents.float()
    batch = z.shape[0]
    for index, t in enumerate(timesteps):
        check_stop()
        null = null_text[:, index] if null_text.ndim == 4 else null_text
        # One UNet call serves both halves of the guidance.
        noise = backbone.predict_noise(torch.cat([z, z]), t, torch.cat([null, text]))
        noise = classifier_free_guidance(noise[:batch], noise[batch:], guidance_scale)
        z = change_timestep(noise, z, alphas[t], alphas[previous_timestep(timesteps, index)])
    return z
