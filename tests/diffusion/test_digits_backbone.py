"""Training the digits latent diffusion model: the code path at a few steps (the shipped weights are tested in
tests/diffusion/test_digits_weights.py)."""

import pytest
import torch

from tint_core.diffusion import backbone_identity, load_backbone
from tint_core.diffusion.digits_backbone import (
    DigitsBackboneConfig,
    digits_components,
    digits_training_data,
    save_components,
    train_digits_backbone,
)

FEW_STEPS = DigitsBackboneConfig(vae_steps=3, unet_steps=3, batch_size=8)


@pytest.fixture(scope="module")
def data():
    images, labels, names = digits_training_data()
    rows = torch.arange(0, len(images), 20)  # every class, 46 images
    return images[rows], labels[rows], names


def test_the_architecture_has_the_planned_shapes_and_sizes():
    components = digits_components()
    count = {name: sum(p.numel() for p in components[name].parameters()) for name in ("vae", "unet")}
    assert 0.6e6 < count["vae"] < 0.7e6 and 3.1e6 < count["unet"] < 3.3e6
    latents = components["vae"].encode(torch.zeros(1, 3, 16, 16)).latent_dist.mean
    assert latents.shape == (1, 4, 8, 8)


def test_training_is_seeded_and_the_saved_folder_loads_as_a_backbone(data, tmp_path):
    images, labels, names = data
    first = train_digits_backbone(images, labels, names, FEW_STEPS)
    second = train_digits_backbone(images, labels, names, FEW_STEPS)
    for name in ("unet", "vae"):
        for (key, a), b in zip(first[name].state_dict().items(), second[name].state_dict().values(), strict=True):
            assert torch.equal(a, b), f"{name}.{key} differs between two runs with one seed"
    assert first["vae"].config.scaling_factor == second["vae"].config.scaling_factor != 0.18215

    folder = save_components(first, tmp_path / "model")
    backbone = load_backbone(str(folder), device="cpu")
    assert backbone.working_size == 16 and backbone.latent_shape == (4, 8, 8)
    weights = next(iter(first["unet"].state_dict().values()))
    torch.testing.assert_close(next(iter(backbone.unet.state_dict().values())), weights.half().float())
    size = sum(file.stat().st_size for file in folder.rglob("*") if file.is_file())
    assert size < 10 * 2**20

    other = train_digits_backbone(images, labels, names, FEW_STEPS.updated(seed=1))
    save_components(other, tmp_path / "other")
    assert backbone_identity(str(tmp_path / "other")) != backbone_identity(str(folder))


def test_bad_training_input_is_refused(data):
    images, labels, names = data
    with pytest.raises(ValueError, match="indices into 2 class names"):
        train_digits_backbone(images, labels, names[:2], FEW_STEPS)
    with pytest.raises(ValueError, match="caption_template"):
        train_digits_backbone(images, labels, names, FEW_STEPS.updated(caption_template="a photo"))
