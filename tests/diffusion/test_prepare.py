import pytest
import torch
from PIL import Image
from transformers import Swin2SRConfig, Swin2SRForImageSuperResolution

from tint_core.diffusion.prepare import Swin2SRUpscaler, as_rgb_tensor, prepare_supports


@pytest.fixture(scope="module")
def tiny_swin2sr(tmp_path_factory):
    torch.manual_seed(0)
    config = Swin2SRConfig(image_size=16, embed_dim=8, depths=[1], num_heads=[2], window_size=4, upscale=4,
                           upsampler="pixelshuffle", num_channels=3)  # fmt: skip
    folder = tmp_path_factory.mktemp("swin2sr")
    Swin2SRForImageSuperResolution(config).save_pretrained(folder)
    return folder


def test_supports_of_any_size_come_out_at_the_working_size():
    images = [torch.rand(3, 10, 30), Image.new("L", (7, 9)), torch.rand(1, 5, 5)]
    prepared = prepare_supports(images, 32)
    assert prepared.shape == (3, 3, 32, 32)
    assert 0 <= float(prepared.min()) and float(prepared.max()) <= 1


def test_super_resolution_path_upscales_by_four_then_resizes(tiny_swin2sr):
    upscaler = Swin2SRUpscaler.from_pretrained(str(tiny_swin2sr))
    small = torch.rand(2, 3, 8, 8)
    assert upscaler(small).shape == (2, 3, 32, 32)
    prepared = prepare_supports([torch.rand(3, 50, 40)], 48, upscaler, super_resolution_input=8)
    assert prepared.shape == (1, 3, 48, 48)


def test_super_resolution_is_applied_not_skipped():
    calls = []

    def fake(images):
        calls.append(images.shape)
        return torch.zeros(images.shape[0], 3, images.shape[2] * 4, images.shape[3] * 4)

    prepared = prepare_supports([torch.rand(3, 40, 40)], 16, fake, super_resolution_input=4)
    assert calls == [(1, 3, 4, 4)] and torch.equal(prepared, torch.zeros(1, 3, 16, 16))


def test_a_missing_super_resolution_model_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="huggingface-cli download caidas/swin2SR"):
        Swin2SRUpscaler.from_pretrained("caidas/swin2SR-classical-sr-x4-64")


def test_rgba_tensor_is_composited_on_white():
    rgba = torch.zeros(4, 2, 2)  # black, fully transparent
    assert torch.equal(as_rgb_tensor(rgba), torch.ones(3, 2, 2))


def test_the_configured_super_resolution_model_is_used_by_specialize(tiny_swin2sr):
    from tint_core.diffusion import (
        NullTextConfig,
        PreparationConfig,
        SpecializationConfig,
        TextualInversionConfig,
        load_backbone,
        specialize,
    )

    backbone = load_backbone("tiny", device="cpu")
    base = SpecializationConfig(
        textual_inversion=TextualInversionConfig(steps=1, warmup_steps=0), null_text=NullTextConfig(num_steps=1)
    )
    supports = {"a": [torch.rand(3, 20, 20, generator=torch.Generator().manual_seed(0))]}
    plain = specialize(backbone, supports, base)["a"]
    upscaled = specialize(
        backbone, supports, base.updated(preparation=PreparationConfig(super_resolution=str(tiny_swin2sr),
                                                                      super_resolution_input=8))  # fmt: skip
    )["a"]
    assert not torch.allclose(plain.inverted_latents, upscaled.inverted_latents)
