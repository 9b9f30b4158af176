"""Textual inversion: one learned token vector per class (SPEC §3).

Classes train together in one UNet batch. Each class draws its supports, noise and timesteps
from its own seeded stream, and the batched loss is the sum of per-class means, so a class gets
exactly the updates it would get training alone (AdamW acts per element).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from tint_core.diffusion.backbone import Backbone
from tint_core.diffusion.config import TextualInversionConfig
from tint_core.diffusion.prompts import class_prompt_ids
from tint_core.progress import ProgressFn
from tint_core.stopping import check_stop

logger = logging.getLogger(__name__)

# Random draws come in chunks of this many steps; a constant so that draws never depend on batching.
CHUNK_STEPS = 100


@dataclass
class TokenTraining:
    """Result of textual inversion for N classes."""

    vectors: torch.Tensor  # (N, width) float32, CPU
    losses: torch.Tensor  # (steps, N) per-class loss at every step, CPU


class _ClassDraws:
    """The random choices of one class: support order, noise and timesteps, in seeded chunks."""

    def __init__(self, seed: int, num_supports: int, latent_shape: tuple[int, ...], config: TextualInversionConfig):
        self._generator = torch.Generator().manual_seed(seed)
        self._num_supports = num_supports
        self._latent_shape = latent_shape
        self._config = config
        self._order: list[int] = []

    def chunk(self, steps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Support indices (steps,), noise (steps, *latent) and timesteps (steps,) for the next steps."""
        indices = []
        for _ in range(steps):
            if not self._order:  # a new pass over the supports, in a fresh shuffled order
                self._order = torch.randperm(self._num_supports, generator=self._generator).tolist()
            indices.append(self._order.pop(0))
        noise = torch.randn((steps, *self._latent_shape), generator=self._generator)
        timesteps = torch.randint(
            self._config.min_timestep, self._config.max_timestep + 1, (steps,), generator=self._generator
        )
        return torch.tensor(indices), noise, timesteps


def train_tokens(
    backbone: Backbone,
    latents: Sequence[torch.Tensor],
    init_words: Sequence[str],
    seeds: Sequence[int],
    config: TextualInversionConfig = TextualInversionConfig(),
    images: Sequence[torch.Tensor] | None = None,
    progress: ProgressFn | None = None,
    cuda_graph: bool = True,
) -> TokenTraining:
    """Learn one token vector per class.

    Args:
        latents: per class, the supports' latents (K_c, 4, h, w).
        init_words: per class, the single-token word that initialises its vector.
        seeds: per class, the seed of its random stream (a class trained alone with the same seed
            gets the same result).
        images: per class, the prepared supports (K_c, 3, H, W); when given, each step re-encodes its
            support through the VAE, as the reference implementation does (faithful mode).
        progress: called with ("textual_inversion", step, steps) every ``CHUNK_STEPS`` steps.
        cuda_graph: on CUDA, replay each step's forward and backward as one captured CUDA graph (a TI
            step at batch N is launch-bound otherwise); falls back to eager execution if capture fails.

    Returns:
        The learned vectors and the per-class loss curve.
    """
    # 1. check inputs
    num_classes = len(latents)
    if num_classes == 0:
        raise ValueError("no classes to train")
    if not (len(init_words) == len(seeds) == num_classes) or (images is not None and len(images) != num_classes):
        raise ValueError("latents, init_words, seeds (and images) need one entry per class")
    for index, class_latents in enumerate(latents):
        if class_latents.ndim != 4 or class_latents.shape[0] == 0:
            raise ValueError(f"class {index} has no supports (latents of shape {tuple(class_latents.shape)})")
    device = backbone.device

    # 2. prompts, and the token vectors initialised from the init words
    ids, positions = class_prompt_ids(backbone, config.prompt_template, init_words)
    init = torch.stack([backbone.token_vector(backbone.word_token_id(word)) for word in init_words])
    vectors = torch.nn.Parameter(init.to(device))  # (N, width) float32
    optimizer = torch.optim.AdamW([vectors], lr=config.learning_rate, weight_decay=config.weight_decay)
    warmup = config.warmup_steps
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, step / warmup) if warmup else 1.0)

    # 3. optimise, a chunk of pre-drawn random choices at a time
    draws = [_ClassDraws(seed, int(lat.shape[0]), tuple(lat.shape[1:]), config) for seed, lat in zip(seeds, latents)]
    device_latents = [lat.to(device, torch.float32) for lat in latents]
    losses = torch.empty(config.steps, num_classes, device=device)

    def loss_and_gradient(clean: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Per-class losses (N,); leaves their gradient in ``vectors.grad``."""
        vectors.grad = None
        noisy = backbone.scheduler.add_noise(clean, noise, timesteps)
        text = backbone.text_embeddings(ids, positions, vectors)
        per_class = (backbone.predict_noise(noisy, timesteps, text) - noise).pow(2).mean(dim=(1, 2, 3))
        per_class.sum().backward()
        return per_class

    if cuda_graph and device.type == "cuda" and images is None:
        loss_and_gradient = _capture(loss_and_gradient, vectors, (num_classes, *latents[0].shape[1:]), device)
    for start in range(0, config.steps, CHUNK_STEPS):
        steps = min(CHUNK_STEPS, config.steps - start)
        chunks = [draw.chunk(steps) for draw in draws]
        support_index = torch.stack([chunk[0] for chunk in chunks], dim=1)  # (steps, N)
        noise = torch.stack([chunk[1] for chunk in chunks], dim=1).to(device, non_blocking=True)  # (steps, N, 4, h, w)
        timesteps = torch.stack([chunk[2] for chunk in chunks], dim=1).to(device, non_blocking=True)  # (steps, N)
        if images is None:
            clean_all = torch.stack([device_latents[c][support_index[:, c]] for c in range(num_classes)], dim=1)
        for step in range(steps):
            check_stop()
            if images is None:
                clean = clean_all[step]
            else:
                clean = torch.cat([backbone.encode(images[c][support_index[step, c]][None]) for c in range(num_classes)])
            per_class = loss_and_gradient(clean, noise[step], timesteps[step])
            optimizer.step()
            schedule.step()
            losses[start + step] = per_class.detach()
        if progress is not None:
            progress("textual_inversion", start + steps, config.steps)
    losses = losses.cpu()
    logger.info("textual inversion: %d classes, %d steps, final losses %s", num_classes, config.steps,
                [round(v, 4) for v in losses[-min(100, config.steps):].mean(0).tolist()])  # fmt: skip
    return TokenTraining(vectors=vectors.detach().cpu(), losses=losses)


LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _capture(step: LossFn, vectors: torch.nn.Parameter, latent_shape: tuple[int, ...], device: torch.device) -> LossFn:
    """Capture ``step`` (forward + backward) in a CUDA graph over static input buffers.

    The graph writes the gradient into the ``vectors.grad`` tensor allocated during capture, so the
    returned function must be used with an optimiser that never sets gradients to None.
    """
    clean = torch.zeros(latent_shape, device=device)
    noise = torch.zeros(latent_shape, device=device)
    timesteps = torch.full(latent_shape[:1], 500, dtype=torch.long, device=device)
    try:
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # warm-up outside the graph, as CUDA graph capture requires
            for _ in range(2):
                step(clean, noise, timesteps)
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        vectors.grad = None
        with torch.cuda.graph(graph):  # step() sets vectors.grad to None: backward allocates it in the graph
            per_class = step(clean, noise, timesteps)
    except RuntimeError as error:  # an op that cannot be captured: run eagerly
        logger.warning("CUDA graph capture of the textual-inversion step failed (%s); running eagerly", error)
        vectors.grad = None
        return step

    def replay(new_clean: torch.Tensor, new_noise: torch.Tensor, new_timesteps: torch.Tensor) -> torch.Tensor:
        clean.copy_(new_clean)
        noise.copy_(new_noise)
        timesteps.copy_(new_timesteps)
        graph.replay()
        return per_class

    return replay

