import pytest
import torch

from tests.diffusion.helpers import smooth_images
from tint_core.diffusion.ddim import change_timestep, ddim_invert, guided_denoise, previous_timestep
from tint_core.diffusion.prompts import null_text_embedding


def test_timestep_change_matches_the_direct_formula():
    generator = torch.Generator().manual_seed(0)
    z, eps = torch.randn(3, 4, 8, 8, generator=generator), torch.randn(3, 4, 8, 8, generator=generator)
    a, b = torch.tensor(0.3), torch.tensor(0.9)
    clean = (z - (1 - 0.3) ** 0.5 * eps) / 0.3**0.5
    expected = 0.9**0.5 * clean + (1 - 0.9) ** 0.5 * eps
    torch.testing.assert_close(change_timestep(eps, z, a, b), expected)


def test_timestep_change_is_its_own_inverse():
    generator = torch.Generator().manual_seed(1)
    z, eps = torch.randn(2, 4, 8, 8, generator=generator), torch.randn(2, 4, 8, 8, generator=generator)
    a, b = torch.tensor([0.2, 0.5]), torch.tensor([0.95, 0.7])  # per-sample alphas
    there = change_timestep(eps, z, a, b)
    torch.testing.assert_close(change_timestep(eps, there, b, a), z, rtol=1e-5, atol=1e-5)


def test_timestep_change_to_the_same_timestep_is_the_identity():
    z, eps = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    torch.testing.assert_close(change_timestep(eps, z, torch.tensor(0.4), torch.tensor(0.4)), z)


def test_schedule_is_trailing_and_ends_at_timestep_zero(backbone):
    timesteps = backbone.timesteps(25)
    assert timesteps[0] == 999 and timesteps[-1] == 39 and len(timesteps) == 25
    assert previous_timestep(timesteps, 24) == 0 and previous_timestep(timesteps, 0) == 959


def test_ddim_inversion_matches_an_independent_step_by_step_computation(backbone):
    latents = backbone.encode(smooth_images(2))
    text = torch.randn(2, 77, backbone.text_shape[1], generator=torch.Generator().manual_seed(2))
    steps = 5
    trajectory = ddim_invert(backbone, latents, text, backbone.timesteps(steps))

    # Independent computation from the scheduler's training alphas and ascending timesteps 0 < t_1 < … < t_S.
    alphas = backbone.scheduler.alphas_cumprod.double()
    ascending = sorted(backbone.timesteps(steps))
    z = latents.double()
    expected = [z]
    previous = 0
    for t in ascending:
        eps = backbone.predict_noise(z.float(), t, text).double()
        a_prev, a_next = alphas[previous], alphas[t]
        z = a_next.sqrt() * (z - (1 - a_prev).sqrt() * eps) / a_prev.sqrt() + (1 - a_next).sqrt() * eps
        expected.append(z)
        previous = t
    assert trajectory.shape == (steps + 1, 2, *backbone.latent_shape)
    torch.testing.assert_close(trajectory.double(), torch.stack(expected), rtol=1e-4, atol=1e-4)


def test_guided_denoise_with_scale_one_ignores_the_null_embedding(backbone):
    z = torch.randn(2, *backbone.latent_shape, generator=torch.Generator().manual_seed(3))
    text = torch.randn(2, 77, backbone.text_shape[1], generator=torch.Generator().manual_seed(4))
    null = null_text_embedding(backbone).expand(2, -1, -1)
    other = torch.randn(2, 77, backbone.text_shape[1])
    timesteps = backbone.timesteps(3)
    first = guided_denoise(backbone, z, text, null, timesteps, 1.0)
    second = guided_denoise(backbone, z, text, other, timesteps, 1.0)
    torch.testing.assert_close(first, second)


@pytest.mark.parametrize("batch", [1, 3])
def test_guided_denoise_is_the_same_batched_and_one_by_one(backbone, batch):
    generator = torch.Generator().manual_seed(5)
    z = torch.randn(batch, *backbone.latent_shape, generator=generator)
    text = torch.randn(batch, 77, backbone.text_shape[1], generator=generator)
    nulls = torch.randn(batch, 4, 77, backbone.text_shape[1], generator=generator)  # per-sample, per-step
    timesteps = backbone.timesteps(4)
    together = guided_denoise(backbone, z, text, nulls, timesteps, 7.5)
    alone = torch.cat([guided_denoise(backbone, z[i : i + 1], text[i : i + 1], nulls[i : i + 1], timesteps, 7.5)
                       for i in range(batch)])  # fmt: skip
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-4)
