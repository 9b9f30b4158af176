"""`tint specialize` and `tint generate` on the tiny backbone: the same results as the library calls."""

import pytest
import torch
from typer.testing import CliRunner

from tests.diffusion.helpers import smooth_images
from tint_core.cli import app
from tint_core.diffusion import (
    ClassSpecialization,
    GenerationConfig,
    NullTextConfig,
    SpecializationConfig,
    TextualInversionConfig,
    generate_images,
    specialize,
)
from tint_core.images import load_image, tensor_to_pil

runner = CliRunner()
CONFIG = SpecializationConfig(
    textual_inversion=TextualInversionConfig(steps=4, warmup_steps=1),
    null_text=NullTextConfig(num_steps=3, inner_steps=2),
)
TINY = ["--backbone", "tiny", "--device", "cpu"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A support folder of two classes (PNG files), a config YAML, and the CLI's specialisations of them."""
    root = tmp_path_factory.mktemp("cli")
    for name, count, seed in (("cat", 2, 1), ("dog", 3, 2)):
        (root / "supports" / name).mkdir(parents=True)
        for index, image in enumerate(smooth_images(count, size=20, seed=seed)):
            tensor_to_pil(image).save(root / "supports" / name / f"{index}.png")
    CONFIG.to_yaml(root / "config.yaml")
    result = runner.invoke(app, ["specialize", str(root / "supports"), str(root / "out"),
                                 "--config", str(root / "config.yaml"), "--seed", "3", *TINY])  # fmt: skip
    assert result.exit_code == 0, result.output
    return root


def test_specialize_writes_what_the_library_computes(workspace, backbone):
    supports = {name: [load_image(path) for path in sorted((workspace / "supports" / name).iterdir())]
                for name in ("cat", "dog")}  # fmt: skip
    expected = specialize(backbone, supports, CONFIG, seed=3)
    for name in ("cat", "dog"):
        written = ClassSpecialization.load(workspace / "out" / name)
        assert written.class_name == name and written.num_supports == len(supports[name])
        torch.testing.assert_close(written.token_vector, expected[name].token_vector)
        torch.testing.assert_close(written.null_embeddings, expected[name].null_embeddings)


def test_generate_writes_the_library_images_per_class(workspace, backbone):
    out = workspace / "generated"
    result = runner.invoke(app, ["generate", str(workspace / "out"), str(out), "--images", "3", "--seed", "5", *TINY])
    assert result.exit_code == 0, result.output
    specs = [ClassSpecialization.load(workspace / "out" / name) for name in ("cat", "dog")]
    expected = generate_images(backbone, specs, GenerationConfig(images_per_class=3), seed=5)
    for label, name in enumerate(("cat", "dog")):
        files = sorted((out / name).iterdir())
        assert [file.name for file in files] == ["00000.png", "00001.png", "00002.png"]
        written = torch.stack([load_image(file) for file in files])
        assert written.shape[-2:] == (20, 20)  # the supports' size
        torch.testing.assert_close(written, expected.images[expected.labels == label], atol=1 / 255, rtol=0)


def test_existing_outputs_are_kept_unless_overwrite_is_given(workspace):
    out = workspace / "again"
    args = ["generate", str(workspace / "out"), str(out), *TINY]
    assert runner.invoke(app, [*args, "--images", "4"]).exit_code == 0
    refused = runner.invoke(app, [*args, "--images", "2"])
    assert refused.exit_code == 1 and "already holds cat, dog" in refused.stderr
    assert len(list((out / "cat").iterdir())) == 4
    assert runner.invoke(app, [*args, "--images", "2", "--overwrite"]).exit_code == 0
    assert sorted(file.name for file in (out / "cat").iterdir()) == ["00000.png", "00001.png"]  # no stale images


def test_bad_inputs_are_named_before_any_work(workspace, tmp_path):
    (tmp_path / "supports" / "cat").mkdir(parents=True)
    (tmp_path / "supports" / "empty").mkdir()
    tensor_to_pil(smooth_images(1, size=16)[0]).save(tmp_path / "supports" / "cat" / "a.png")
    result = runner.invoke(app, ["specialize", str(tmp_path / "supports"), str(tmp_path / "out"), *TINY])
    assert result.exit_code == 1 and "without images" in result.stderr and "empty" in result.stderr
    assert not (tmp_path / "out").exists()

    missing = tmp_path / "[/red]"  # printed as it is, not read as markup
    result = runner.invoke(app, ["specialize", str(missing), str(tmp_path / "out"), *TINY])
    assert result.exit_code == 1 and result.stderr == f"error: support folder {missing} does not exist\n"

    result = runner.invoke(app, ["generate", str(tmp_path / "supports"), str(tmp_path / "gen"), *TINY])
    assert result.exit_code == 1 and "no specialisation" in result.stderr

    other = runner.invoke(
        app, ["generate", str(workspace / "out"), str(tmp_path / "gen"), *TINY, "--backbone-seed", "1"]
    )
    assert other.exit_code == 1 and "specialised on tiny:seed=0, not tiny:seed=1" in other.stderr


@pytest.mark.parametrize(
    "text, message",
    [("textual_inversion: {steps: 3\n", "not valid YAML at line"),
     ("null_text:\n  num_stepz: 3\n", "unknown field 'null_text.num_stepz'"),
     ("textual_inversion:\n  steps: 0\n", "field 'textual_inversion.steps': Input should be greater than or equal to 1")],
)  # fmt: skip
def test_a_bad_config_file_is_one_line_naming_the_file_and_the_field(workspace, tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = runner.invoke(app, ["specialize", str(workspace / "supports"), str(tmp_path / "out"), "--config",
                                 str(path), *TINY])  # fmt: skip
    assert result.exit_code == 1 and result.stderr.startswith(f"error: {path}: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
