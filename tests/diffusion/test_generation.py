import pytest
import torch

from tests.diffusion.helpers import smooth_images
from tint_core.diffusion import (
    GenerationConfig,
    NullTextConfig,
    SpecializationConfig,
    TextualInversionConfig,
    generate_images,
    reconstruct,
    specialize,
)
from tint_core.diffusion.generation import mix_noise, rms

CONFIG = SpecializationConfig(
    textual_inversion=TextualInversionConfig(steps=6, warmup_steps=2),
    null_text=NullTextConfig(num_steps=4, inner_steps=3),
)


@pytest.fixture(scope="module")
def specializations(backbone):
    supports = {"cat": list(smooth_images(2, size=20, seed=1)), "dog": list(smooth_images(3, size=20, seed=2))}
    return list(specialize(backbone, supports, CONFIG, seed=0).values())


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_noise_mix_has_the_interpolated_rms(alpha):
    generator = torch.Generator().manual_seed(0)
    inverted, noise = 0.5 * torch.randn(4, 4, 8, 8, generator=generator), torch.randn(4, 4, 8, 8, generator=generator)
    mixed = mix_noise(inverted, noise, torch.full((4,), alpha))
    torch.testing.assert_close(rms(mixed), (1 - alpha) * rms(inverted) + alpha * rms(noise))
    # and it points where (1 − α)·z_T + α·ε points
    direction = (1 - alpha) * inverted + alpha * noise
    cosine = torch.nn.functional.cosine_similarity(mixed.flatten(1), direction.flatten(1))
    torch.testing.assert_close(cosine, torch.ones(4))


def test_alpha_zero_reproduces_the_null_text_reconstruction(backbone, specializations):
    size = backbone.working_size
    config = GenerationConfig(images_per_class=4, alpha=0.0, output_size=size)
    generated = generate_images(backbone, specializations, config, seed=3, batch_size=8)
    expected = torch.cat([reconstruct(backbone, spec) for spec in specializations])
    offsets = torch.tensor([0, specializations[0].num_supports])
    rows = offsets[generated.labels] + generated.support_index
    torch.testing.assert_close(generated.images, expected[rows], rtol=1e-4, atol=1e-4)


def test_generation_is_the_same_batched_and_one_image_at_a_time(backbone, specializations):
    config = GenerationConfig(images_per_class=3, random_alpha=True)
    batched = generate_images(backbone, specializations, config, seed=4, batch_size=6)
    serial = generate_images(backbone, specializations, config, seed=4, batch_size=1)
    torch.testing.assert_close(batched.images, serial.images, rtol=1e-4, atol=1e-4)
    assert torch.equal(batched.support_index, serial.support_index) and torch.equal(batched.alpha, serial.alpha)


def test_same_seed_gives_identical_images_and_another_seed_other_images(backbone, specializations):
    config = GenerationConfig(images_per_class=2)
    first = generate_images(backbone, specializations, config, seed=5)
    second = generate_images(backbone, specializations, config, seed=5)
    third = generate_images(backbone, specializations, config, seed=6)
    assert torch.equal(first.images, second.images)
    assert not torch.allclose(first.images, third.images)


def test_a_class_gets_the_same_images_alone_or_with_other_classes(backbone, specializations):
    config = GenerationConfig(images_per_class=2)
    together = generate_images(backbone, specializations, config, seed=7)
    alone = generate_images(backbone, specializations[1:], config, seed=7)
    torch.testing.assert_close(together.images[together.labels == 1], alone.images, rtol=1e-4, atol=1e-4)


def test_images_come_back_at_the_support_size_with_labels_and_provenance(backbone, specializations):
    generated = generate_images(backbone, specializations, GenerationConfig(images_per_class=3, alpha=0.5), seed=8)
    assert generated.images.shape == (6, 3, 20, 20)
    assert 0.0 <= float(generated.images.min()) and float(generated.images.max()) <= 1.0
    assert generated.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert all(0 <= s < specializations[label].num_supports
               for s, label in zip(generated.support_index.tolist(), generated.labels.tolist()))  # fmt: skip
    assert torch.all(generated.alpha == 0.5)
    resized = generate_images(backbone, specializations, GenerationConfig(images_per_class=1, output_size=12), seed=8)
    assert resized.images.shape == (2, 3, 12, 12)


def test_random_alpha_draws_a_different_alpha_per_image(backbone, specializations):
    generated = generate_images(backbone, specializations, GenerationConfig(images_per_class=4, random_alpha=True))
    assert len(set(generated.alpha.tolist())) == 8 and 0 <= generated.alpha.min() and generated.alpha.max() <= 1


def test_text_only_baseline_ignores_the_supports_inversions(backbone, specializations):
    config = GenerationConfig(images_per_class=2)
    text_only = generate_images(backbone, specializations, config, seed=9, method="text_only")
    tint = generate_images(backbone, specializations, config, seed=9)
    assert torch.all(text_only.support_index == -1)
    assert not torch.allclose(text_only.images, tint.images)
    # Changing the null-text inversion does not change text-only images.
    altered = [spec for spec in specializations]
    altered[0] = type(altered[0])(**{**vars(altered[0]), "null_embeddings": torch.zeros_like(altered[0].null_embeddings)})
    again = generate_images(backbone, altered, config, seed=9, method="text_only")
    assert torch.equal(again.images, text_only.images)


def test_specialisations_from_another_backbone_are_refused(backbone, specializations):
    foreign = type(specializations[0])(**{**vars(specializations[0]), "backbone": "sd15-random:seed=0"})
    with pytest.raises(ValueError, match="specialised on sd15-random"):
        generate_images(backbone, [foreign], GenerationConfig(images_per_class=1))


def test_classes_of_different_sizes_need_an_output_size(backbone, specializations):
    other = type(specializations[0])(**{**vars(specializations[0]), "support_size": (30, 30)})
    with pytest.raises(ValueError, match="set output_size"):
        generate_images(backbone, [other, specializations[1]], GenerationConfig(images_per_class=1))
    sized = generate_images(backbone, [other, specializations[1]], GenerationConfig(images_per_class=1, output_size=16))
    assert sized.images.shape == (2, 3, 16, 16)
