import pytest
import torch
from diffusers import StableDiffusionPipeline
from PIL import Image

from tests.diffusion.helpers import assert_adam_close, smooth_images
from tint_core.diffusion import (
    ClassSpecialization,
    EngineConfig,
    NullTextConfig,
    SpecializationConfig,
    TextualInversionConfig,
    load_backbone,
    specialize,
)
from tint_core.diffusion.prompts import class_text_embeddings
from tint_core.diffusion.specialization import INVERSION_FILE, TOKEN_FILE, token_name

CONFIG = SpecializationConfig(
    textual_inversion=TextualInversionConfig(steps=5, warmup_steps=1),
    null_text=NullTextConfig(num_steps=3, inner_steps=2),
)


@pytest.fixture(scope="module")
def supports():
    return {"Golden retriever": list(smooth_images(2, size=24, seed=1)), "cat": list(smooth_images(1, size=24, seed=2))}


@pytest.fixture(scope="module")
def specializations(backbone, supports):
    return specialize(backbone, supports, CONFIG, seed=0)


def test_each_class_gets_a_token_and_per_support_inversions(backbone, specializations):
    retriever = specializations["Golden retriever"]
    assert retriever.token == "<golden-retriever>"
    assert retriever.inverted_latents.shape == (2, *backbone.latent_shape)
    assert retriever.null_embeddings.shape == (2, 3, *backbone.text_shape)
    assert retriever.timesteps == backbone.timesteps(3) and retriever.support_size == (24, 24)
    assert retriever.latent_mse.shape == retriever.psnr.shape == (2,)
    assert torch.isfinite(retriever.psnr).all()


def test_save_and_load_round_trip_every_field(tmp_path, specializations):
    original = specializations["cat"]
    loaded = ClassSpecialization.load(original.save(tmp_path / "cat"))
    assert original.reconstructions is not None and loaded.reconstructions is None  # for reports only, not saved
    for name, value in vars(original).items():
        if name != "reconstructions":
            other = getattr(loaded, name)
            assert torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other, name


def test_a_saved_token_loads_through_diffusers_and_gives_the_same_text_embedding(tmp_path, backbone, specializations):
    spec = specializations["Golden retriever"]
    spec.save(tmp_path)
    pipeline = StableDiffusionPipeline(
        vae=backbone.vae, unet=backbone.unet, scheduler=backbone.scheduler, safety_checker=None,
        feature_extractor=None, requires_safety_checker=False,
        # a private copy: loading a token grows the tokenizer and the embedding matrix
        tokenizer=type(backbone.tokenizer).from_pretrained(_saved(backbone.tokenizer, tmp_path / "tok")),
        text_encoder=type(backbone.text_encoder)(backbone.text_encoder.config),
    )  # fmt: skip
    pipeline.text_encoder.load_state_dict(backbone.text_encoder.state_dict())
    pipeline.load_textual_inversion(str(tmp_path))
    ids = pipeline.tokenizer(
        spec.prompt_template.format(spec.token), padding="max_length", max_length=77, return_tensors="pt"
    ).input_ids
    with torch.no_grad():
        theirs = pipeline.text_encoder(ids)[0]
    ours = class_text_embeddings(backbone, spec.prompt_template, [spec.init_word], spec.token_vector[None])
    torch.testing.assert_close(theirs, ours.detach(), rtol=1e-5, atol=1e-5)


def _saved(tokenizer, folder):
    tokenizer.save_pretrained(folder)
    return folder


def test_loading_refuses_a_folder_without_both_files(tmp_path, specializations):
    folder = specializations["cat"].save(tmp_path / "cat")
    (folder / TOKEN_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=TOKEN_FILE):
        ClassSpecialization.load(folder)
    assert (folder / INVERSION_FILE).exists()


def test_faithful_mode_gives_the_batched_result(backbone, supports, specializations):
    faithful = specialize(backbone, supports, CONFIG.updated(engine=EngineConfig(mode="faithful")), seed=0)
    for name, batched in specializations.items():
        torch.testing.assert_close(faithful[name].token_vector, batched.token_vector, rtol=1e-4, atol=1e-5)
        assert_adam_close(faithful[name].null_embeddings, batched.null_embeddings)
        torch.testing.assert_close(faithful[name].inverted_latents, batched.inverted_latents, rtol=1e-4, atol=1e-4)


def test_a_class_gets_the_same_specialisation_alone_or_in_an_episode(backbone, supports, specializations):
    alone = specialize(backbone, {"cat": supports["cat"]}, CONFIG, seed=0)["cat"]
    torch.testing.assert_close(alone.token_vector, specializations["cat"].token_vector, rtol=1e-4, atol=1e-5)


def test_grayscale_rgba_and_palette_supports_are_converted(backbone):
    gray = Image.new("L", (30, 20), 90)
    rgba = Image.new("RGBA", (20, 20), (10, 200, 30, 128))
    palette = Image.new("RGB", (16, 16), (200, 10, 10)).convert("P")
    result = specialize(backbone, {"mixed": [gray, rgba, palette]}, CONFIG, seed=0)
    assert result["mixed"].num_supports == 3 and result["mixed"].support_size == (20, 30)


def test_progress_counts_each_stage_up_to_its_total_across_inversion_groups(backbone, supports):
    calls = []
    config = CONFIG.updated(engine=EngineConfig(inversion_batch_size=2))  # 3 supports: 2 groups
    specialize(backbone, supports, config, seed=0, progress=lambda *call: calls.append(call))
    steps = CONFIG.null_text.num_steps
    assert [done for stage, done, _ in calls if stage == "null_text"] == list(range(1, 2 * steps + 1))
    assert {total for stage, _, total in calls if stage == "null_text"} == {2 * steps}
    assert calls[-1] == ("null_text", 2 * steps, 2 * steps)
    assert ("textual_inversion", CONFIG.textual_inversion.steps, CONFIG.textual_inversion.steps) in calls


def _progress_log():
    calls = []
    return calls, lambda stage, done, total: calls.append(stage)


@pytest.mark.parametrize(
    ("supports", "message"),
    [
        ({}, "no classes"),
        ({"a": [torch.rand(3, 8, 8)], "b": []}, "class 'b' has no support images"),
        ({"a": [torch.rand(3, 8, 8)], "b": [torch.rand(3, 8, 8) * 3]}, r"class 'b'\[0\] must lie in \[0, 1\]"),
        ({"a": [torch.rand(8, 8)]}, "rank 2"),
        ({"a": [torch.rand(2, 3, 8, 8)]}, "rank 4"),
        ({"a": [torch.rand(5, 8, 8)]}, "1, 3 or 4 channels"),
        ({"a": ["photo.png"]}, "PIL image or a tensor"),
        ({"?!": [torch.rand(3, 8, 8)]}, "no letters or digits"),
        ({"A b": [torch.rand(3, 8, 8)], "a-B": [torch.rand(3, 8, 8)]}, "collide"),
    ],
)
def test_bad_supports_fail_before_any_work_with_the_problem_named(backbone, supports, message):
    calls, progress = _progress_log()
    with pytest.raises(ValueError, match=message):
        specialize(backbone, supports, CONFIG, progress=progress)
    assert calls == []


def test_bad_init_words_fail_before_any_work(backbone):
    calls, progress = _progress_log()
    with pytest.raises(ValueError, match="2 words"):
        specialize(backbone, {"a": [torch.rand(3, 8, 8)]}, CONFIG, init_words={"a": "golden dog"}, progress=progress)
    assert calls == []


@pytest.mark.parametrize("options", [{"precision": "bf16"}, {"compile_unet": True}])
def test_faithful_mode_refuses_what_the_reference_does_not_do(options):
    backbone = load_backbone("tiny", device="cpu", **options)
    with pytest.raises(ValueError, match="fp32 eager reference"):
        specialize(backbone, {"a": [torch.rand(3, 8, 8)]}, CONFIG.updated(engine=EngineConfig(mode="faithful")))


def test_bf16_backbone_specialises_with_fp32_optimisation_state():
    bf16 = load_backbone("tiny", device="cpu", precision="bf16")
    spec = specialize(bf16, {"a": list(smooth_images(1, seed=3))}, CONFIG, seed=0)["a"]
    assert spec.token_vector.dtype == spec.null_embeddings.dtype == spec.inverted_latents.dtype == torch.float32
    assert torch.isfinite(spec.null_embeddings).all() and torch.isfinite(spec.latent_mse).all()


def test_token_names_are_slugs_in_angle_brackets():
    assert token_name("Golden Retriever (puppy)") == "<golden-retriever-puppy>"
