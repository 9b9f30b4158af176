"""The application flow (support folder → student) and the specialisation unit as a flow of its own."""

import json

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from flows.benchmark import benchmark
from flows.cli import app as cli
from flows.distill import distill
from flows.specialize import specialize
from tests.pipeline.helpers import app_config, run_flow, small_config
from tint_core.fewshot.student import load_student
from tint_core.pipeline.config import DistillAppConfig, SpecializationUnit
from tint_core.pipeline.generation import generate_keys, specialize_keys
from tint_core.pipeline.presets import digits_distill_config
from tint_core.pipeline.requests import DistillRequest
from tint_core.store import ArtifactStore

pytestmark = pytest.mark.usefixtures("prefect_server")


def test_the_application_turns_a_support_folder_into_a_student_loadable_without_the_pipeline(tmp_path,
                                                                                             support_folder):  # fmt: skip
    config = app_config(tmp_path, support_folder)
    first = run_flow(distill, DistillRequest.of(config), config, label="distill application")
    student = load_student(first.outcome.student)
    images = torch.rand(4, 3, 16, 16)
    assert student.predict(images).shape == (4, 3)
    description = json.loads((tmp_path / "student" / "student.json").read_text())
    assert description["classes"] == ["five", "seven", "six"] and description["timm_name"] == "resnet12_tiny"
    assert len(description["curves"]["kd_loss"]) == config.student.training.steps == description["steps"]
    report = (tmp_path / "student" / "report.md").read_text()
    assert "| six | 2 |" in report and "12 synthetic images labelled by the teacher" in report
    for name in ("five", "six", "seven"):  # each class's strip: supports, reconstructions, TINT samples
        assert f"![class {name}](pictures/{name}.png)" in report
        assert Image.open(tmp_path / "student" / "pictures" / f"{name}.png").size[0] > 100
    # The backbone alone is a plain timm model: its tensors load into timm.create_model.
    import timm
    from safetensors.torch import load_file

    tensors = load_file(first.outcome.student)
    backbone = timm.create_model("resnet12_tiny", num_classes=0, img_size=16)
    backbone.load_state_dict({name[len("extractor.backbone."):]: value for name, value in tensors.items()
                              if name.startswith("extractor.backbone.")})  # fmt: skip

    # The same student as ONNX, checked on the supports; its card says no held-out accuracy exists.
    from tint_core.export.card import ModelCard, headline
    from tint_core.export.onnx import OnnxClassifier, read_metadata

    assert first.outcome.onnx == str(tmp_path / "student" / "student.onnx")
    assert read_metadata(first.outcome.onnx)["classes"] == ["five", "seven", "six"]
    assert torch.equal(OnnxClassifier(first.outcome.onnx)(images).argmax(1), student.predict(images).argmax(1))
    card = ModelCard.model_validate_json((tmp_path / "student" / "card.json").read_text())
    assert card.check.images == 6 and card.check.max_logit_difference <= config.export.tolerance
    assert card.accuracy.student is None and "no accuracy can be claimed" in card.accuracy.note
    assert card.lineage["artifacts"]["student"] == ArtifactStore(config.store).list(step="distill")[0].key
    assert headline(card) in (tmp_path / "student" / "model_card.md").read_text()

    again = run_flow(distill, DistillRequest.of(config), config)
    assert again.executed() == {"export-student": 1, "package-student": 1}  # every pipeline step reused
    assert load_student(again.outcome.student).predict(images).equal(student.predict(images))


def test_the_digits_preset_runs_the_application_on_a_cpu_and_a_second_run_is_all_cached(tmp_path, support_folder):
    # The preset as a person runs it, shortened with --set (fewer steps, one pre-training epoch) to suit a test.
    sets = ["store=" + str(tmp_path / "store"), "generator.specialization.textual_inversion.steps=4",
            "generator.specialization.null_text.num_steps=3", "generator.generation.images_per_class=6",
            "teacher.pretrain.epochs=1", "student.pretrain.epochs=1", "student.training.steps=4"]  # fmt: skip
    output = tmp_path / "student"
    result = CliRunner().invoke(cli, ["distill", str(support_folder), str(output), "--preset", "digits",
                                      *[item for value in sets for item in ("--set", value)]])  # fmt: skip
    assert result.exit_code == 0, result.output
    description = json.loads((output / "student.json").read_text())
    assert description["timm_name"] == "resnet12_tiny" and description["input_size"] == 16
    assert description["classes"] == ["five", "seven", "six"] and description["steps"] == 4
    assert sorted(path.name for path in (output / "pictures").iterdir()) == ["five.png", "seven.png", "six.png"]
    assert "18 synthetic images labelled by the teacher" in (output / "report.md").read_text()
    # The backbones were prepared on the base digits as the benchmark prepares them: the same cached steps.
    store = ArtifactStore(str(tmp_path / "store"))
    assert len(store.list(step="backbone")) == 2 and len(store.list(step="dataset")) == 1

    settings = digits_distill_config(str(support_folder), str(output)).with_overrides(sets)
    assert f"onnx: {output / 'student.onnx'}" in result.stdout and (output / "model_card.md").is_file()
    again = run_flow(distill, DistillRequest.of(settings), settings)
    assert again.executed() == {"export-student": 1, "package-student": 1}  # the preset's configuration: all reused


def test_the_distill_command_refuses_a_preset_and_a_config_together(tmp_path, support_folder):
    result = CliRunner().invoke(cli, ["distill", str(support_folder), str(tmp_path / "out"), "--preset", "digits",
                                      "--config", str(tmp_path / "app.yaml")])  # fmt: skip
    assert result.exit_code == 1 and "give --preset or --config, not both" in result.output


def test_preparing_the_backbones_without_base_classes_is_refused():
    from tint_core.config import ConfigError

    with pytest.raises(ConfigError, match="needs base classes"):
        DistillAppConfig.from_mapping({"supports": "s", "output": "o", "teacher": {"centre_on_base": True}})
    assert DistillAppConfig(supports="s", output="o").student.pretrain is None  # the default needs none


def test_the_application_needs_at_least_two_classes(tmp_path, support_folder):
    import shutil

    shutil.rmtree(support_folder / "six")
    shutil.rmtree(support_folder / "seven")
    config = app_config(tmp_path, support_folder)
    state = distill(DistillRequest.of(config), config, return_state=True)
    with pytest.raises(ValueError, match="1 class subfolder"):
        state.result()
    assert not (tmp_path / "store").exists()


def specialize_keys_refs(store: ArtifactStore, url: str, episode, classes, generator) -> list:
    return [store.ref(key) for key in specialize_keys(url, episode, classes, generator)]


def test_the_specialisation_flow_writes_the_artifacts_the_benchmark_would(tmp_path):
    url = str(tmp_path / "store")
    config = small_config(url, unit="class")
    outcome = run_flow(benchmark, config=config).outcome
    store = ArtifactStore(url)
    episode = next(m for m in store.list(step="episode") if m.params["episode_id"] == 0)
    episode_ref = store.ref(episode.key)
    artifacts = len(store.list())

    units = [SpecializationUnit(episode=episode_ref, classes=[0, 2]), SpecializationUnit(episode=episode_ref,
                                                                                         classes=[1])]  # fmt: skip
    unit, single = specialize(url, units, ["tint", "ti_only"], config.generator)
    assert single.specializations == specialize_keys_refs(store, url, episode_ref, [1], config.generator)
    assert [ref.key for ref in unit.specializations] == specialize_keys(url, episode_ref, [0, 2], config.generator)
    for method in ("tint", "ti_only"):
        assert [ref.key for ref in unit.images[method]] == generate_keys(url, unit.specializations, config.generator,
                                                                         method)  # fmt: skip
    assert len(store.list()) == artifacts  # the benchmark's tasks had written every one of them already
    assert outcome.summary.episodes == 2


def test_the_training_flow_caches_the_model_and_exports_a_loadable_checkpoint(tmp_path):
    from flows.train_backbone import train_backbone
    from tint_core.diffusion import backbone_identity, load_backbone
    from tint_core.diffusion.config import DigitsBackboneConfig
    from tint_core.pipeline.config import TrainBackboneConfig

    config = TrainBackboneConfig(store=str(tmp_path / "store"), output=str(tmp_path / "model"),
                                 training=DigitsBackboneConfig(vae_steps=2, unet_steps=2, batch_size=8))  # fmt: skip
    first = run_flow(train_backbone, config, label="train the digits backbone (2 + 2 steps)")
    backbone = load_backbone(first.outcome.folder, device="cpu")
    assert backbone.working_size == 16 and backbone.identity != backbone_identity("digits")
    identity = backbone.identity

    again = run_flow(train_backbone, config)
    assert again.executed() == {"export-backbone": 1}  # dataset and training reused from the store
    assert load_backbone(first.outcome.folder, device="cpu").identity == identity
    longer = config.updated(training=config.training.updated(unet_steps=3), output=str(tmp_path / "longer"))
    assert load_backbone(run_flow(train_backbone, longer).outcome.folder, device="cpu").identity != identity
