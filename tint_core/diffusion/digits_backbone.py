"""A tiny text-to-image latent diffusion model trained here, on the bundled digits' base classes (0-4) only.

It has Stable Diffusion's anatomy at a small size. An ``AutoencoderKL`` maps 16×16 images to 4×8×8 latents, and a
``UNet2DConditionModel`` (channels 64/128, cross-attention width 128) predicts noise conditioned on a CLIP text
encoder of the tiny kind. The encoder is frozen with seeded random weights, as SD's CLIP is frozen. Captions read
"a photo of a 3"; 10% of them are empty, so classifier-free guidance works. The UNet's weights are an exponential
moving average. The result is written in diffusers layout, so ``load_backbone(folder)`` loads it like any SD 1.x
checkpoint. The novel digits 5-9 are never seen.

    python -m tint_core.diffusion.digits_backbone OUTPUT_FOLDER [--seed 0]

reproduces the weights shipped in ``tint_core/assets/digits-ldm`` (about 13 minutes on two CPU cores).
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

from tint_core.diffusion.backbone import Backbone
from tint_core.diffusion.config import DIGITS_CAPTION, DigitsBackboneConfig
from tint_core.diffusion.random_backbones import clip_text_encoder, sd_ddim_scheduler, tiny_tokenizer
from tint_core.fewshot.augment import random_affine
from tint_core.images import check_image_batch
from tint_core.progress import ProgressFn
from tint_core.seeding import global_rng_seeded
from tint_core.stopping import check_stop

logger = logging.getLogger(__name__)

WEIGHTS_DTYPE = torch.float16  # shipped weights: half precision keeps the folder under 10 MB


def digits_components(seed: int = 0, image_size: int = 16) -> dict[str, object]:
    """Untrained components: VAE (16×16 → 4×8×8, ≈0.66M parameters), UNet (≈3.2M), frozen tiny CLIP, DDIM."""
    with global_rng_seeded(seed):  # diffusers/transformers initialise weights from the global RNG
        tokenizer = tiny_tokenizer()
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(32, 64), layers_per_block=1, latent_channels=4,
            norm_num_groups=16, sample_size=image_size,
        )  # fmt: skip
        unet = UNet2DConditionModel(
            sample_size=image_size // 2, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(64, 128),
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=128, attention_head_dim=8, norm_num_groups=32,
        )  # fmt: skip
        text_encoder = clip_text_encoder(tokenizer, vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256,
                                     num_hidden_layers=2, num_attention_heads=4)  # fmt: skip
        return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "scheduler": sd_ddim_scheduler()}


def _cosine_with_warmup(optimizer: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = max(1, steps // 20)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))
    )


def _batches(count: int, batch_size: int, generator: torch.Generator):
    """Endless shuffled index batches (each pass over the data in a fresh order)."""
    while True:
        yield from torch.randperm(count, generator=generator).split(batch_size)


def train_autoencoder(vae: AutoencoderKL, images: torch.Tensor, config: DigitsBackboneConfig,
                      progress: ProgressFn | None = None) -> list[float]:  # fmt: skip
    """Train the VAE in place on augmented ``images`` (B, 3, H, W) in [0, 1], then set its latent scaling factor.

    Returns:
        The loss of every step.
    """
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=config.vae_lr)
    schedule = _cosine_with_warmup(optimizer, config.vae_steps)
    batches = _batches(len(images), config.batch_size, generator)
    losses = []
    vae.train()
    for step in range(config.vae_steps):
        check_stop()
        x = random_affine(images[next(batches)], config.augment, generator) * 2 - 1
        posterior = vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator)
        loss = F.mse_loss(vae.decode(z).sample, x) + config.vae_kl_weight * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if progress is not None:
            progress("autoencoder", step + 1, config.vae_steps)
    vae.eval()
    with torch.no_grad():  # latents of unit standard deviation, which the noise schedule assumes (SD: 0.18215)
        latents = torch.cat([vae.encode(chunk * 2 - 1).latent_dist.mean for chunk in images.split(256)])
    vae.register_to_config(scaling_factor=float(1 / latents.std()))
    return losses


def train_denoiser(components: dict[str, object], images: torch.Tensor, labels: torch.Tensor, class_names: list[str],
                   config: DigitsBackboneConfig, progress: ProgressFn | None = None) -> list[float]:  # fmt: skip
    """Train the UNet in place to predict noise on latents of augmented images, conditioned on their captions.

    The UNet ends up holding the exponential moving average of its weights.

    Returns:
        The loss of every step.
    """
    unet, vae = components["unet"], components["vae"]
    tokenizer, text_encoder = components["tokenizer"], components["text_encoder"]
    noise_schedule = DDPMScheduler.from_config(components["scheduler"].config)
    generator = torch.Generator().manual_seed(config.seed + 1)
    captions = [config.caption_template.format(name) for name in class_names] + [""]
    with torch.no_grad():  # the encoder is frozen: every caption's embedding once, the empty caption last
        ids = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids  # fmt: skip
        texts = text_encoder(ids)[0]  # (classes + 1, 77, width)
    scale = vae.config.scaling_factor
    ema = copy.deepcopy(unet).requires_grad_(False)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=config.unet_lr)
    schedule = _cosine_with_warmup(optimizer, config.unet_steps)
    batches = _batches(len(images), config.batch_size, generator)
    losses = []
    unet.train()
    for step in range(config.unet_steps):
        check_stop()
        rows = next(batches)
        with torch.no_grad():
            x = random_affine(images[rows], config.augment, generator) * 2 - 1
            latents = vae.encode(x).latent_dist.mean * scale  # (b, 4, h, w)
        dropped = torch.rand(len(rows), generator=generator) < config.caption_dropout
        text = texts[torch.where(dropped, len(class_names), labels[rows])]
        noise = torch.randn(latents.shape, generator=generator)
        t = torch.randint(0, noise_schedule.config.num_train_timesteps, (len(rows),), generator=generator)
        loss = F.mse_loss(unet(noise_schedule.add_noise(latents, noise, t), t, encoder_hidden_states=text).sample, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            # A short warm-up of the average, so that early steps do not freeze it near the random initialisation.
            decay = min(config.ema_decay, (1 + step) / (10 + step))
            for average, weight in zip(ema.parameters(), unet.parameters(), strict=True):
                average.lerp_(weight, 1 - decay)
        losses.append(loss.item())
        if progress is not None:
            progress("denoiser", step + 1, config.unet_steps)
    unet.load_state_dict(ema.state_dict())
    unet.eval()
    return losses


def train_digits_backbone(images: torch.Tensor, labels: torch.Tensor, class_names: list[str],
                          config: DigitsBackboneConfig = DigitsBackboneConfig(),
                          progress: ProgressFn | None = None) -> dict[str, object]:  # fmt: skip
    """Build and train the model on base-class images.

    Args:
        images: (B, 3, 16, 16) in [0, 1].
        labels: (B,) class index into ``class_names``.
        class_names: the caption word of each class (e.g. "3").

    Returns:
        Trained components (``COMPONENTS`` keys), ready for :func:`save_components` or ``Backbone.from_components``.
    """
    check_image_batch(images)
    if labels.shape != (len(images),) or int(labels.max()) >= len(class_names):
        raise ValueError(f"labels must be ({len(images)},) indices into {len(class_names)} class names")
    if config.caption_template.count("{}") != 1:
        raise ValueError(f"caption_template must contain '{{}}' once, got {config.caption_template!r}")
    components = digits_components(config.seed, image_size=images.shape[-1])
    started = time.perf_counter()
    vae_losses = train_autoencoder(components["vae"], images, config, progress)
    components["vae"].requires_grad_(False)
    unet_losses = train_denoiser(components, images, labels, class_names, config, progress)
    logger.info("trained the digits backbone in %.0f s: autoencoder loss %.4f, denoiser loss %.4f",
                time.perf_counter() - started, sum(vae_losses[-50:]) / 50, sum(unet_losses[-50:]) / 50)  # fmt: skip
    return components


def save_components(components: dict[str, object], folder: str | Path, dtype: torch.dtype = WEIGHTS_DTYPE) -> Path:
    """Write components in diffusers layout (safetensors weights in ``dtype``), loadable by ``load_backbone``."""
    folder = Path(folder)
    for name in ("unet", "vae", "text_encoder"):
        module = copy.deepcopy(components[name]).to(dtype)
        module.save_pretrained(folder / name, safe_serialization=True)
    components["tokenizer"].save_pretrained(folder / "tokenizer")
    components["scheduler"].save_pretrained(folder / "scheduler")
    return folder


def autoencoder_psnr(backbone: Backbone, images: torch.Tensor) -> torch.Tensor:
    """PSNR (dB) of each image after encoding and decoding: (B, 3, H, W) in [0, 1] at the working size → (B,)."""
    with torch.no_grad():
        error = (backbone.decode(backbone.encode(images)) - images).pow(2).mean(dim=(1, 2, 3))
    return 10 * torch.log10(1 / error.clamp_min(1e-10))


def caption_images(backbone: Backbone, class_names: list[str], per_class: int, guidance_scale: float = 7.5,
                   steps: int = 25, template: str = DIGITS_CAPTION, seed: int = 0) -> torch.Tensor:  # fmt: skip
    """Images sampled from each class's caption with classifier-free guidance: (len(class_names) · per_class, 3, H, W),
    class-major."""
    from tint_core.diffusion.ddim import guided_denoise
    from tint_core.diffusion.prompts import null_text_embedding

    ids = backbone.token_ids([template.format(name) for name in class_names])
    with torch.no_grad():
        text = backbone.text_embeddings(ids).repeat_interleave(per_class, dim=0)
        null = null_text_embedding(backbone).expand(len(text), -1, -1)
        noise = torch.randn((len(text), *backbone.latent_shape), generator=torch.Generator().manual_seed(seed))
        latents = guided_denoise(backbone, noise, text, null, backbone.timesteps(steps), guidance_scale)
        return backbone.decode(latents)


def digits_training_data(base: tuple[int, ...] = (0, 1, 2, 3, 4), size: int = 16
                         ) -> tuple[torch.Tensor, torch.Tensor, list[str]]:  # fmt: skip
    """The bundled digits of the ``base`` classes as the dataset writes them: images, labels, class names."""
    from tint_core.data.digits import write_digits_dataset

    dataset = write_digits_dataset("memory://tint-digits-training", size=size, base=base, novel=())
    return dataset.load_split("base")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path, help="folder for the diffusers checkpoint")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    config = DigitsBackboneConfig(seed=args.seed)

    def progress(stage: str, done: int, total: int) -> None:
        if done % 100 == 0 or done == total:
            logger.info("%s %d/%d", stage, done, total)

    images, labels, names = digits_training_data()
    components = train_digits_backbone(images, labels, names, config, progress)
    save_components(components, args.output)
    config.to_yaml(args.output / "training.yaml")
    logger.info("wrote %s", args.output)


if __name__ == "__main__":
    main()
