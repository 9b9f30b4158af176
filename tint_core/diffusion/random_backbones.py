"""Random-weight backbones built in process: nothing is ever downloaded.

- ``tiny``: a ~0.5M-parameter Stable-Diffusion-shaped model (32×32 images, 4×8×8 latents)
  for tests, the demo and CPU benchmarks. Every code path of the engine runs on it in seconds.
- ``sd15-random``: Stable Diffusion 1.5's exact shapes (860M-parameter UNet, CLIP ViT-L/14 text
  encoder, 512×512 images) with random weights. Its cost per step equals the real model's, so
  it gives honest speed figures on machines that hold no weights.

Both share a small CLIP BPE tokenizer whose vocabulary covers printable ASCII plus whole-word
tokens for the prompt template and common init words; other words split into characters.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from tint_core.seeding import global_rng_seeded

# Words that become single tokens, so they can serve as init words and keep prompts short.
_WHOLE_WORDS = (
    "a", "an", "the", "of", "photo", "object", "picture", "image", "digit", "number", "thing",
    "dog", "cat", "bird", "car", "flower", "tree", "house", "person", "zero", "one", "two",
    "three", "four", "five", "six", "seven", "eight", "nine",
)  # fmt: skip

BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def _tokenizer_files() -> tuple[dict[str, int], list[str]]:
    """Vocabulary and merges of a byte-level BPE that knows printable ASCII and ``_WHOLE_WORDS``."""
    vocab: dict[str, int] = {}

    def add(token: str) -> None:
        vocab.setdefault(token, len(vocab))

    for code in range(33, 127):
        add(chr(code))
        add(chr(code) + "</w>")
    merges: list[str] = []
    for word in _WHOLE_WORDS:
        # Merge left to right: "p h" → "ph", "ph o" → "pho", …, the last piece carries "</w>".
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        merged = pieces[0]
        for piece in pieces[1:]:
            merge = f"{merged} {piece}"
            if merge not in merges:
                merges.append(merge)
            merged += piece
            add(merged)
    add(BOS)
    add(EOS)
    return vocab, merges


def tiny_tokenizer() -> CLIPTokenizer:
    """A working CLIP tokenizer (max length 77) with a ~300-token vocabulary."""
    vocab, merges = _tokenizer_files()
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "vocab.json").write_text(json.dumps(vocab))
        Path(folder, "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
        return CLIPTokenizer.from_pretrained(folder, model_max_length=77)


def clip_text_encoder(tokenizer: CLIPTokenizer, vocab_size: int, **shape: int | str) -> CLIPTextModel:
    """A CLIP text encoder with seeded random weights, shaped by ``shape`` (hidden size, layers, heads...)."""
    config = CLIPTextConfig(
        vocab_size=vocab_size,
        max_position_embeddings=77,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **shape,
    )
    return CLIPTextModel(config).eval()


def sd_ddim_scheduler() -> DDIMScheduler:
    """DDIM with Stable Diffusion 1.x's training schedule ("scaled_linear" betas)."""
    return DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        timestep_spacing="trailing",
    )


@torch.no_grad()
def _calibrate_latent_scale(vae: AutoencoderKL, size: int, count: int = 8) -> None:
    """Set ``scaling_factor`` so latents of smooth random images have unit standard deviation,
    as Stable Diffusion's 0.18215 does for its VAE; the noise schedule assumes that scale."""
    generator = torch.Generator().manual_seed(1234)
    coarse = torch.rand(count, 3, 4, 4, generator=generator)
    images = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    latents = vae.encode(images.to(next(vae.parameters()).device) * 2 - 1).latent_dist.mean
    vae.register_to_config(scaling_factor=float(1 / latents.std()))


def tiny_components(seed: int = 0) -> dict[str, object]:
    """Seeded random components of a tiny SD-shaped model (images 32×32, latents 4×8×8)."""
    with global_rng_seeded(seed):  # diffusers/transformers initialise weights from the global RNG
        tokenizer = tiny_tokenizer()
        unet = UNet2DConditionModel(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            layers_per_block=1,
            block_out_channels=(16, 32),
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=128,
            attention_head_dim=4,
            norm_num_groups=8,
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 3,
            up_block_types=("UpDecoderBlock2D",) * 3,
            block_out_channels=(8, 16, 16),
            latent_channels=4,
            norm_num_groups=4,
            sample_size=32,
        )
        _calibrate_latent_scale(vae, size=32)
        text_encoder = clip_text_encoder(
            tokenizer,
            vocab_size=len(tokenizer),
            # Wide enough that null-text optimisation has the leverage it has on real CLIP (768 wide).
            hidden_size=128,
            intermediate_size=256,
            num_hidden_layers=2,
            num_attention_heads=4,
        )
        return {"unet": unet.eval(), "vae": vae.eval(), "text_encoder": text_encoder, "tokenizer": tokenizer,
                "scheduler": sd_ddim_scheduler()}  # fmt: skip


def sd15_random_components(seed: int = 0, device: torch.device | str = "cpu") -> dict[str, object]:
    """Stable Diffusion 1.5's shapes with seeded random weights (initialised directly on ``device``)."""
    with global_rng_seeded(seed):  # diffusers/transformers initialise weights from the global RNG
        tokenizer = tiny_tokenizer()
        with torch.device(device):
            unet = UNet2DConditionModel(
                sample_size=64,
                cross_attention_dim=768,
                attention_head_dim=8,
                layers_per_block=2,
                block_out_channels=(320, 640, 1280, 1280),
            )
            vae = AutoencoderKL(
                down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4,
                block_out_channels=(128, 256, 512, 512),
                layers_per_block=2,
                latent_channels=4,
                sample_size=512,
            )
            text_encoder = clip_text_encoder(
                tokenizer,
                vocab_size=49408,
                hidden_size=768,
                intermediate_size=3072,
                num_hidden_layers=12,
                num_attention_heads=12,
                hidden_act="quick_gelu",
            )
        _calibrate_latent_scale(vae, size=512, count=2)
        return {"unet": unet.eval(), "vae": vae.eval(), "text_encoder": text_encoder, "tokenizer": tokenizer,
                "scheduler": sd_ddim_scheduler()}  # fmt: skip
