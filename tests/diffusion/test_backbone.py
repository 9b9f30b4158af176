import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from tint_core.diffusion import Backbone, BackboneConfig, BackboneNotFoundError, backbone_identity, load_backbone
from tint_core.diffusion.random_backbones import tiny_components


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The tiny model saved as a diffusers checkpoint folder, with a DDPM scheduler as many checkpoints ship."""
    folder = tmp_path_factory.mktemp("checkpoint")
    components = tiny_components(seed=3)
    for name in ("unet", "vae", "text_encoder", "tokenizer"):
        components[name].save_pretrained(folder / name)
    DDPMScheduler.from_config(components["scheduler"].config).save_pretrained(folder / "scheduler")
    return folder


def test_a_checkpoint_folder_loads_with_a_trailing_ddim_scheduler(checkpoint):
    backbone = load_backbone(str(checkpoint), device="cpu")
    assert isinstance(backbone.scheduler, DDIMScheduler)
    assert backbone.scheduler.config.timestep_spacing == "trailing"
    assert backbone.identity.startswith("folder:checkpoint")
    reference = load_backbone("tiny", device="cpu", seed=3)
    z = torch.randn(1, *reference.latent_shape)
    text = torch.randn(1, *reference.text_shape)
    torch.testing.assert_close(backbone.predict_noise(z, 500, text), reference.predict_noise(z, 500, text))


def test_identity_is_stable_and_follows_the_model(checkpoint, tmp_path):
    first = load_backbone(str(checkpoint), device="cpu").identity
    assert load_backbone(str(checkpoint), device="cpu").identity == first
    assert load_backbone("tiny", seed=0, device="cpu").identity != load_backbone("tiny", seed=1, device="cpu").identity


def test_the_identity_is_known_without_loading_weights(checkpoint, monkeypatch, tmp_path):
    assert backbone_identity(str(checkpoint)) == load_backbone(str(checkpoint), device="cpu").identity
    assert backbone_identity("tiny", seed=2) == load_backbone("tiny", seed=2, device="cpu").identity
    assert backbone_identity("sd15-random", seed=1) == "sd15-random:seed=1"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneNotFoundError, match="never downloads"):
        backbone_identity("someone/missing-model")


def test_a_checkpoint_folder_missing_a_component_names_it(checkpoint, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(checkpoint, broken)
    shutil.rmtree(broken / "vae")
    with pytest.raises(ValueError, match="missing component folder.*vae"):
        load_backbone(str(broken), device="cpu")


def test_a_model_missing_from_the_local_cache_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneNotFoundError, match="huggingface-cli download someone/missing-model"):
        load_backbone("someone/missing-model", device="cpu")


def test_a_path_that_is_not_a_folder_is_refused(tmp_path):
    with pytest.raises(BackboneNotFoundError, match="not a checkpoint folder"):
        load_backbone(str(tmp_path / "nowhere" / "model"), device="cpu")


def test_v_prediction_is_converted_to_noise_prediction():
    components = tiny_components(seed=0)
    epsilon = Backbone.from_components(components, "eps")
    v_components = dict(components, scheduler=DDIMScheduler.from_config(components["scheduler"].config,
                                                                          prediction_type="v_prediction"))  # fmt: skip
    v_model = Backbone.from_components(v_components, "v")
    z, text = torch.randn(2, *epsilon.latent_shape), torch.randn(2, *epsilon.text_shape)
    t = torch.tensor([100, 800])
    raw = epsilon.predict_noise(z, t, text)  # the UNet's output, read as v by the second backbone
    alpha = epsilon.alphas_cumprod[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(v_model.predict_noise(z, t, text), alpha.sqrt() * raw + (1 - alpha).sqrt() * z)


def test_sample_prediction_checkpoints_are_refused():
    components = tiny_components(seed=0)
    components["scheduler"] = DDIMScheduler.from_config(components["scheduler"].config, prediction_type="sample")
    with pytest.raises(ValueError, match="prediction_type 'sample'"):
        Backbone.from_components(components, "x")


def test_missing_components_and_bad_precisions_are_named():
    components = tiny_components(seed=0)
    del components["vae"]
    with pytest.raises(ValueError, match="missing backbone components: vae"):
        Backbone.from_components(components, "x")
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        load_backbone("tiny", device="cpu", precision="fp16")


def test_encode_decode_shapes_and_range(tmp_path):
    backbone = load_backbone("tiny", device="cpu")
    images = torch.rand(3, 3, backbone.working_size, backbone.working_size)
    latents = backbone.encode(images, batch_size=2)
    assert latents.shape == (3, *backbone.latent_shape) and latents.dtype == torch.float32
    decoded = backbone.decode(latents)
    assert decoded.shape == images.shape and 0 <= float(decoded.min()) and float(decoded.max()) <= 1
    torch.testing.assert_close(backbone.encode(images[:1]), latents[:1], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="prepare them first"):
        backbone.encode(torch.rand(1, 3, 20, 20))


def test_tiny_latents_have_about_unit_scale():
    backbone = load_backbone("tiny", device="cpu")
    images = torch.nn.functional.interpolate(torch.rand(8, 3, 4, 4), size=(32, 32), mode="bilinear")
    assert 0.5 < float(backbone.encode(images).std()) < 2.0


def test_backbone_config_fields_are_load_backbone_arguments():
    config = BackboneConfig(source="tiny", device="cpu", seed=3)
    backbone = load_backbone(**config.model_dump())
    assert backbone.identity == "tiny:seed=3" and backbone.dtype == torch.float32
