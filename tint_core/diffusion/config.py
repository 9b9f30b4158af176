"""Every hyperparameter of the generation engine, with SPEC §2–6 defaults."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tint_core.config import TintConfig
from tint_core.fewshot.config import AugmentConfig

DEFAULT_MODEL_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"
RANDOM_BACKBONES = ("tiny", "sd15-random")  # built in process with seeded random weights
DIGITS_CAPTION = "a photo of a {}"  # captions and the textual-inversion template must share this wording


class BackboneConfig(TintConfig, title="Diffusion model"):
    """Which diffusion model to use and how to run it."""

    source: str = Field(
        DEFAULT_MODEL_ID,
        description="Hub id in the local cache, a local diffusers folder, 'digits' (trained here on digits 0-4, "
        "shipped), or 'tiny' / 'sd15-random' (random weights).",
    )
    device: str = Field("auto", description="'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:1', …")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="Weights of UNet/VAE/text encoder; optimisation always stays fp32."
    )
    seed: int = Field(0, description="Seed of the random weights of 'tiny' / 'sd15-random'; ignored otherwise.")
    compile_unet: bool = Field(
        False,
        description="torch.compile the UNet: faster steps on a GPU after minutes of compiling per batch shape; "
        "worth it for full-length textual/null-text inversion, not for short runs or CPU.",
    )


class PreparationConfig(TintConfig, title="Support preparation"):
    """How supports are brought to the backbone's working size (SPEC §2)."""

    super_resolution: str | None = Field(
        None,
        description="Local folder or cached hub id of a ×4 Swin2SR model; None = plain bilinear resize.",
    )
    super_resolution_input: int = Field(
        128, ge=8, description="Side supports are resized to before the ×4 super-resolution step."
    )


class TextualInversionConfig(TintConfig, title="Textual inversion"):
    """Textual inversion of one token per class (SPEC §3)."""

    steps: int = Field(5000, ge=1, description="Optimisation steps per class.")
    learning_rate: float = Field(1e-3, gt=0, description="AdamW learning rate after warm-up.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (torch's default).")
    warmup_steps: int = Field(100, ge=0, description="Linear learning-rate warm-up from 0.")
    min_timestep: int = Field(250, ge=0, le=999, description="Smallest training timestep drawn (inclusive).")
    max_timestep: int = Field(999, ge=0, le=999, description="Largest training timestep drawn (inclusive).")
    prompt_template: str = Field("A photo of an {}", description="Class prompt; '{}' is where the token goes.")
    init_word: str = Field("object", description="Word whose embedding initialises every class token.")

    @model_validator(mode="after")
    def _check(self) -> TextualInversionConfig:
        if self.min_timestep > self.max_timestep:
            raise ValueError(f"min_timestep {self.min_timestep} > max_timestep {self.max_timestep}")
        if self.prompt_template.count("{}") != 1:
            raise ValueError(f"prompt_template must contain '{{}}' exactly once, got {self.prompt_template!r}")
        return self


class NullTextConfig(TintConfig, title="Null-text inversion"):
    """DDIM inversion + null-text inversion per support (SPEC §4–5); sampling reuses its steps and scale."""

    num_steps: int = Field(25, ge=1, le=1000, description="DDIM steps of inversion and sampling.")
    guidance_scale: float = Field(7.5, ge=0, description="Classifier-free guidance scale w.")
    inner_steps: int = Field(10, ge=1, description="Adam steps per timestep at most.")
    learning_rate: float = Field(1e-2, gt=0, description="Adam learning rate of the null embeddings.")
    early_stop_loss: float = Field(1e-5, ge=0, description="A support stops a timestep's inner loop below this loss.")
    warn_relative_error: float = Field(
        0.05,
        ge=0,
        description="Warn when a support's reconstruction latent MSE exceeds this fraction of its latent variance.",
    )


class EngineConfig(TintConfig, title="Engine (batching, compilation)"):
    """How the work is scheduled on the device."""

    mode: Literal["batched", "faithful"] = Field(
        "batched",
        description="'batched': classes/supports/images share UNet batches, latents encoded once. "
        "'faithful': batch 1, re-encoding every TI step, as the reference implementation (for comparison).",
    )
    cuda_graphs: bool = Field(
        True, description="On CUDA, replay each batched TI step as a captured CUDA graph (TI is launch-bound)."
    )
    inversion_batch_size: int = Field(
        25, ge=1, description="Supports per UNet batch in batched DDIM/null-text inversion (bounds GPU memory)."
    )
    generation_batch_size: int = Field(16, ge=1, description="Images per UNet batch in batched generation.")


class SpecializationConfig(TintConfig, title="Specialisation"):
    """Everything that turns supports into class specialisations."""

    backbone: BackboneConfig = Field(BackboneConfig(), description="The diffusion model and how to run it.")
    preparation: PreparationConfig = Field(PreparationConfig(), description="Bringing supports to the working size.")
    textual_inversion: TextualInversionConfig = Field(
        TextualInversionConfig(), description="One learned token per class."
    )
    null_text: NullTextConfig = Field(NullTextConfig(), description="DDIM + null-text inversion of each support.")
    engine: EngineConfig = Field(EngineConfig(), description="Scheduling on the device (speed only, not results).")


class GenerationConfig(TintConfig, title="Generation"):
    """TINT sampling (SPEC §6)."""

    images_per_class: int = Field(1000, ge=1, description="Synthetic images generated per class.")
    alpha: float = Field(1.0, ge=0, le=1, description="Noise mix: 0 reproduces a support, 1 is a fresh image.")
    random_alpha: bool = Field(False, description="Draw α ~ U[0, 1] per image instead of the fixed alpha.")
    output_size: int | None = Field(
        None, ge=8, description="Side of generated images; None = the size of the class's first support."
    )


class DigitsBackboneConfig(TintConfig, title="Digits backbone training"):
    """How the digits latent diffusion model is trained (defaults: the shipped weights)."""

    caption_template: str = Field(DIGITS_CAPTION, description="Caption of a class; '{}' is the class name.")
    caption_dropout: float = Field(0.1, ge=0, le=1, description="Fraction of empty captions (for guidance).")
    vae_steps: int = Field(1500, ge=1, description="Autoencoder training steps.")
    vae_lr: float = Field(1e-3, gt=0, description="Autoencoder AdamW peak learning rate.")
    vae_kl_weight: float = Field(1e-6, ge=0, description="Weight of the KL term of the autoencoder's loss.")
    unet_steps: int = Field(2000, ge=1, description="UNet training steps.")
    unet_lr: float = Field(1e-3, gt=0, description="UNet AdamW peak learning rate.")
    batch_size: int = Field(64, ge=1, description="Images per step.")
    ema_decay: float = Field(0.999, ge=0, lt=1, description="Decay of the UNet's exponential moving average.")
    augment: AugmentConfig = Field(
        default_factory=lambda: AugmentConfig(crop_scale_min=0.8, rotation_degrees=10.0, shear_degrees=5.0,
                                              hflip_probability=0.0, padding="zeros"),
        description="Small random affine maps of the training images (never flipped: a mirrored 3 is no 3).",
    )
    seed: int = Field(0, description="Seeds initialisation, batches, noise, augmentation and caption dropout.")
