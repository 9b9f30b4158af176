"""Null-text inversion (SPEC §5): per-support, per-step unconditional embeddings that make guided
DDIM sampling from z_T retrace the support's DDIM-inversion trajectory.

All supports optimise together: each has its own null embedding, its own Adam state (Adam acts
per element) and its own early stop; a support that has stopped leaves the UNet batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from tint_core.diffusion.backbone import Backbone
from tint_core.diffusion.config import NullTextConfig
from tint_core.diffusion.ddim import change_timestep, classifier_free_guidance, previous_timestep
from tint_core.progress import ProgressFn
from tint_core.stopping import check_stop

logger = logging.getLogger(__name__)


@dataclass
class NullTextInversion:
    """Result of null-text inversion for B supports over S steps."""

    null_embeddings: torch.Tensor  # (B, S, 77, width) float32, CPU: u_0 … u_{S−1}
    reconstruction: torch.Tensor  # (B, 4, h, w) latents reached by guided sampling with them
    inner_steps: torch.Tensor  # (B, S) Adam steps taken per support and timestep
    final_losses: torch.Tensor  # (B, S) loss of the last inner step taken


def null_text_invert(
    backbone: Backbone,
    trajectory: torch.Tensor,
    text: torch.Tensor,
    null_init: torch.Tensor,
    timesteps: Sequence[int],
    config: NullTextConfig = NullTextConfig(),
    progress: ProgressFn | None = None,
) -> NullTextInversion:
    """Optimise null embeddings so that guided sampling from z_T reproduces each support.

    Args:
        trajectory: DDIM-inversion latents (S + 1, B, 4, h, w) from ``ddim_invert``.
        text: conditional prompt embeddings (B, 77, width).
        null_init: (77, width) embedding of the empty prompt; every support starts from it.
        timesteps: the descending schedule (S steps).
        progress: called with ("null_text", step, S) after each timestep.
    """
    num_steps = len(timesteps)
    if trajectory.shape[0] != num_steps + 1:
        raise ValueError(f"trajectory has {trajectory.shape[0]} latents, expected {num_steps + 1}")
    batch = trajectory.shape[1]
    alphas = backbone.alphas_cumprod
    w = config.guidance_scale
    text = text.to(backbone.device).float()
    z = trajectory[-1].to(backbone.device).float()
    null = null_init.to(backbone.device).float().expand(batch, -1, -1).clone()  # carried from step to step
    null_embeddings = torch.empty(batch, num_steps, *null.shape[1:])
    inner_steps = torch.zeros(batch, num_steps, dtype=torch.long)
    final_losses = torch.zeros(batch, num_steps)

    for index, t in enumerate(timesteps):
        check_stop()
        alpha_t, alpha_prev = alphas[t], alphas[previous_timestep(timesteps, index)]
        target = trajectory[num_steps - 1 - index].to(backbone.device).float()
        with torch.no_grad():
            noise_cond = backbone.predict_noise(z, t, text)

        # 1. optimise this step's null embeddings, each support until its own early stop
        parameter = torch.nn.Parameter(null.clone())
        optimizer = torch.optim.Adam([parameter], lr=config.learning_rate)
        active = torch.arange(batch)  # CPU indices: the early-stop bookkeeping costs one sync per inner step
        stopped = torch.zeros(batch, dtype=torch.bool)
        for _ in range(config.inner_steps):
            rows = active.to(backbone.device)
            noise_null = backbone.predict_noise(z[rows], t, parameter[rows])
            noise = classifier_free_guidance(noise_null, noise_cond[rows], w)
            previous = change_timestep(noise, z[rows], alpha_t, alpha_prev)
            loss = (previous - target[rows]).pow(2).mean(dim=(1, 2, 3))  # (A,) per support
            optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
            frozen_rows = stopped.nonzero().squeeze(1).to(backbone.device)
            frozen = parameter.detach()[frozen_rows].clone()
            optimizer.step()
            if frozen_rows.numel():  # Adam's momentum would move supports that already stopped
                with torch.no_grad():
                    parameter[frozen_rows] = frozen
            step_losses = loss.detach().cpu()
            inner_steps[active, index] += 1
            final_losses[active, index] = step_losses
            done = step_losses < config.early_stop_loss
            stopped[active[done]] = True
            active = active[~done]
            if active.numel() == 0:
                break
        null = parameter.detach()
        null_embeddings[:, index] = null.cpu()

        # 2. advance with the optimised embeddings (not the inversion target)
        with torch.no_grad():
            noise_null = backbone.predict_noise(z, t, null)
            z = change_timestep(classifier_free_guidance(noise_null, noise_cond, w), z, alpha_t, alpha_prev)
        if progress is not None:
            progress("null_text", index + 1, num_steps)
    return NullTextInversion(null_embeddings, z.cpu(), inner_steps, final_losses)
