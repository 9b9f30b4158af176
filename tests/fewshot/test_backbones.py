import pytest
import timm
import torch
from safetensors.torch import save_file

from tint_core.fewshot.backbones import FeatureExtractor, create_backbone, resolve_weights, save_backbone


def test_unknown_timm_name_lists_close_known_names():
    with pytest.raises(ValueError, match=r"unknown timm model 'resnet1[2]?x'.*close matches: \[.*resnet12"):
        create_backbone("resnet12x")


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.safetensors does not exist"):
        create_backbone("resnet12_tiny", weights=str(tmp_path / "nothing.safetensors"))


def test_hub_weights_come_from_the_local_cache_only(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not in the local Hugging Face cache.*huggingface-cli download"):
        resolve_weights("hf-hub:timm/some_model")
    snapshot = tmp_path / "models--timm--some_model" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").write_bytes(b"")
    (tmp_path / "models--timm--some_model" / "refs").mkdir()
    (tmp_path / "models--timm--some_model" / "refs" / "main").write_text("abc123")
    assert resolve_weights("hf-hub:timm/some_model") == snapshot / "model.safetensors"


def test_saved_backbone_rebuilds_with_its_kwargs_and_identical_features(tmp_path):
    kwargs = {"img_size": 16, "global_pool": "flatten"}
    model = create_backbone("tint_convnet_tiny", seed=3, **kwargs)
    save_backbone(model, tmp_path / "b.safetensors", "tint_convnet_tiny", kwargs)
    again = create_backbone("tint_convnet_tiny", weights=str(tmp_path / "b.safetensors"))
    x = torch.rand(4, 3, 16, 16)
    assert torch.equal(model.eval()(x), again.eval()(x))
    with pytest.raises(ValueError, match="holds a 'tint_convnet_tiny' backbone, not 'resnet12_tiny'"):
        create_backbone("resnet12_tiny", weights=str(tmp_path / "b.safetensors"))


def test_any_timm_state_dict_loads_and_its_classifier_is_dropped(tmp_path):
    source = timm.create_model("resnet10t", num_classes=7)
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(tmp_path / "r.safetensors"))
    model = create_backbone("resnet10t", weights=str(tmp_path / "r.safetensors"))
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(model.eval()(x), source.eval().forward_head(source.forward_features(x), pre_logits=True))


def test_weights_that_do_not_fit_the_architecture_are_rejected(tmp_path):
    save_file({"stages.0.body.0.weight": torch.zeros(1)}, str(tmp_path / "w.safetensors"))
    with pytest.raises(ValueError, match="does not fit timm model 'resnet12_tiny'"):
        create_backbone("resnet12_tiny", weights=str(tmp_path / "w.safetensors"))


def test_random_initialisation_is_seeded_without_touching_the_global_rng():
    state = torch.random.get_rng_state()
    a, b = create_backbone("resnet12_tiny", seed=1), create_backbone("resnet12_tiny", seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.parametrize(("name", "size", "dim"), [("resnet12", 84, 640), ("resnet12_tiny", 32, 64)])
def test_resnet12_gives_pooled_features_of_its_last_width(name, size, dim):
    model = timm.create_model(name, num_classes=0, img_size=size)
    assert model(torch.rand(2, 3, size, size)).shape == (2, dim)
    assert timm.create_model(name, num_classes=5, img_size=size)(torch.rand(1, 3, size, size)).shape == (1, 5)


def test_feature_extractor_resizes_any_input_and_embeds_in_batches():
    extractor = FeatureExtractor(create_backbone("tint_convnet_tiny", img_size=16), input_size=16)
    images = torch.rand(10, 3, 40, 24)
    assert extractor.embed(images, batch_size=3).shape == (10, extractor.num_features)
    assert torch.allclose(extractor.embed(images, batch_size=3), extractor.embed(images, batch_size=100), atol=1e-6)
