"""The shipped digits latent diffusion model (trained on digits 0-4 only): what it must do, measured on the CPU."""

import torch

from tests.diffusion.helpers import figures
from tint_core.diffusion import (
    GenerationConfig,
    NullTextConfig,
    SpecializationConfig,
    TextualInversionConfig,
    backbone_identity,
    generate_images,
    specialize,
)
from tint_core.diffusion.config import DIGITS_CAPTION
from tint_core.diffusion.ddim import guided_denoise
from tint_core.diffusion.digits_backbone import autoencoder_psnr, caption_images
from tint_core.diffusion.prompts import class_text_embeddings, null_text_embedding
from tint_core.fewshot import digits_recipe as recipe
from tint_core.fewshot.config import TeacherConfig


def psnr(images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(1 / (images - targets).pow(2).mean(dim=(1, 2, 3)))


def test_the_shipped_checkpoint_is_the_digits_backbone(digits_backbone):
    assert digits_backbone.identity == backbone_identity("digits") and digits_backbone.identity.startswith("digits:")
    assert digits_backbone.working_size == 16 and digits_backbone.latent_shape == (4, 8, 8)


def test_the_autoencoder_reconstructs_never_seen_novel_digits_above_25_db(digits_backbone, digits):
    novel, _, _ = digits.load_split("novel")  # digits 5-9: never seen in training
    values = autoencoder_psnr(digits_backbone, novel)
    figures.append(f"digits VAE on novel digits 5-9: PSNR {values.mean():.1f} dB (worst {values.min():.1f})")
    assert values.mean() >= 25


def test_images_generated_from_base_captions_show_their_digit(digits_backbone, digits, digits_backbones):
    config = TeacherConfig(backbone=recipe.teacher_backbone().updated(weights=str(digits_backbones.teacher)))
    teacher = recipe.centred_teacher(digits, config)
    base, labels, names = digits.load_split("base")
    teacher.process_support_set(base, labels)  # a prototype per base digit, from its real images
    per_class = 20
    images = caption_images(digits_backbone, names, per_class, guidance_scale=7.5, steps=NullTextConfig().num_steps)
    intended = torch.arange(len(names)).repeat_interleave(per_class)
    accuracy = float((teacher(images).argmax(1) == intended).float().mean())
    figures.append(f"digits backbone, captions 'a photo of a <0-4>' (w = 7.5, 25 steps): {100 * accuracy:.0f}% "
                   f"of {len(intended)} images assigned to their caption's digit by the digits teacher")  # fmt: skip
    assert accuracy >= 0.9


def test_null_text_inversion_reproduces_novel_supports_far_better_than_inversion_with_guidance(digits_backbone,
                                                                                                digits):  # fmt: skip
    supports = {name: list(digits.load(digits.paths("novel", name)[:2])[0]) for name in ("5", "7")}
    config = SpecializationConfig(
        textual_inversion=TextualInversionConfig(steps=20, prompt_template=DIGITS_CAPTION, init_word="digit"),
    )
    specs = specialize(digits_backbone, supports, config, seed=0)
    for name, spec in specs.items():
        targets = torch.stack(supports[name])
        text = class_text_embeddings(digits_backbone, spec.prompt_template, [spec.init_word], spec.token_vector[None])
        null = null_text_embedding(digits_backbone).expand(len(targets), -1, -1)
        with torch.no_grad():  # the same z_T, guided with the empty prompt's embedding at every step
            plain = digits_backbone.decode(guided_denoise(digits_backbone, spec.inverted_latents,
                                                          text.detach().expand(len(targets), -1, -1), null,
                                                          spec.timesteps, spec.guidance_scale))  # fmt: skip
        plain_psnr = psnr(plain, targets)
        figures.append(f"novel digit {name}: null-text inversion PSNR {spec.psnr.mean():.1f} dB, DDIM inversion + "
                       f"guidance {plain_psnr.mean():.1f} dB")  # fmt: skip
        assert spec.psnr.min() >= 28 and spec.psnr.min() >= plain_psnr.max() + 10

    generated = generate_images(digits_backbone, list(specs.values()), GenerationConfig(images_per_class=3, alpha=0.0))
    for index, name in enumerate(specs):
        rows = generated.labels == index
        targets = torch.stack([supports[name][s] for s in generated.support_index[rows].tolist()])
        torch.testing.assert_close(psnr(generated.images[rows], targets),
                                   specs[name].psnr[generated.support_index[rows]], atol=0.5, rtol=0)  # fmt: skip
