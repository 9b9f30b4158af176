"""The pipeline's configuration files and the layering of the code."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from tint_core.pipeline import BenchmarkConfig, DistillAppConfig
from tint_core.pipeline.presets import demo_config, demo_yaml
from tint_core.pipeline.requests import BenchmarkRequest, DistillRequest

EXAMPLES = Path(__file__).parents[2] / "examples"


def test_the_committed_demo_yaml_is_the_embedded_demo_configuration():
    assert (EXAMPLES / "demo.yaml").read_text() == demo_yaml(), "stale: regenerate as its header says"
    assert BenchmarkConfig.from_yaml(EXAMPLES / "demo.yaml") == demo_config()


@pytest.mark.parametrize("name, model", [("sd15-gpu.yaml", BenchmarkConfig), ("distill-app.yaml", DistillAppConfig)])
def test_every_example_configuration_loads(name, model):
    config = model.from_yaml(EXAMPLES / name)
    assert config.generator.specialization.backbone.device == "cuda"


def test_yaml_fields_left_out_keep_the_spec_defaults(tmp_path):
    path = tmp_path / "partial.yaml"
    path.write_text("episodes:\n  k_shot: 5\n")
    config = BenchmarkConfig.from_yaml(path)
    assert config.episodes.k_shot == 5 and config.episodes.n_way == 5 and config.episodes.episodes == 600
    assert config.generator.specialization.textual_inversion.steps == 5000  # SPEC, not the demo's


def test_every_parameter_of_the_benchmark_form_has_a_description():
    def undocumented(schema: dict, defs: dict, path: str = "") -> list[str]:
        missing = []
        for name, field in schema.get("properties", {}).items():
            if "description" not in field:
                missing.append(f"{path}{name}")
            ref = field.get("$ref") or next((item.get("$ref") for item in field.get("anyOf", []) if "$ref" in item),
                                            None)  # fmt: skip
            if ref:
                missing += undocumented(defs[ref.rsplit("/", 1)[1]], defs, f"{path}{name}.")
        return missing

    schema = BenchmarkConfig.model_json_schema()
    assert undocumented(schema, schema["$defs"]) == []


def test_the_library_never_imports_prefect():
    code = ("import importlib, pkgutil, sys, tint_core\n"
            "for module in pkgutil.walk_packages(tint_core.__path__, 'tint_core.'):\n"
            "    importlib.import_module(module.name)\n"
            "assert 'prefect' not in sys.modules, sorted(m for m in sys.modules if m.startswith('prefect'))\n")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_the_command_line_help_and_the_configuration_models_import_no_model_code():
    # torch, timm, scipy and diffusers take seconds to import: `tint --help`, a command's help or a YAML check should
    # answer at once (benchmarks/cli_start.py measures it), and Prefect loads only when a flow runs.
    code = ("import sys\n"
            "from typer.testing import CliRunner\n"
            "from flows.cli import app\n"
            "from tint_core.pipeline.presets import demo_config\n"
            "demo_config('store').model_json_schema()\n"
            "for args in (['--help'], ['benchmark', '--help'], ['report', '--help'], ['distill', '--help'],\n"
            "             ['store', 'list', '--help'], ['benchmark']):\n"
            "    assert CliRunner().invoke(app, args).exit_code in (0, 2), args\n"
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'timm', 'torchvision', 'scipy',\n"
            "                                                        'diffusers', 'transformers', 'prefect'})\n"
            "assert not heavy, heavy\n")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=Path(__file__).parents[2])


def test_loading_the_flows_imports_no_model_library():
    # Every command, worker's flow run and cached rerun loads the flows first; the model libraries (timm with
    # torchvision, diffusers with transformers, scipy, matplotlib: about 10 s of CPU together) load only in the step
    # that computes with them, so a run whose steps are all cached never pays for them.
    code = ("import sys\n"
            "import flows.benchmark, flows.distill, flows.specialize, flows.fewshot, flows.train_backbone, tasks\n"
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'timm', 'torchvision', 'scipy', 'diffusers',\n"
            "                                                        'transformers', 'matplotlib', 'onnx', 'sklearn'})\n"
            "assert not heavy, heavy\n")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=Path(__file__).parents[2])


def test_tint_variants_name_their_alpha_and_unknown_methods_are_refused():
    from tint_core.config import ConfigError
    from tint_core.diffusion.config import GenerationConfig
    from tint_core.pipeline.config import generator_method, method_generation, method_order

    generation = GenerationConfig(alpha=1.0)
    assert method_generation("tint@0.5", generation).alpha == 0.5
    assert method_generation("tint@random", generation).random_alpha
    assert method_generation("tint", generation) == method_generation("tint@1", generation) == generation
    assert [generator_method(m) for m in ("supports_only", "ti_only", "tint@0.25", "real_pool")] == [
        None, "text_only", "tint", None]  # fmt: skip
    assert sorted(["real_pool", "tint@random", "tint", "supports_only", "tint@0.5", "ti_only"], key=method_order) == [
        "supports_only", "ti_only", "tint", "tint@0.5", "tint@random", "real_pool"]  # fmt: skip
    for bad in ("tint@1.5", "tint@", "magic", "TINT"):
        with pytest.raises(ConfigError, match="unknown method"):
            BenchmarkConfig.from_mapping({"methods": ["tint", bad]})


def test_the_committed_experiment_yaml_is_the_digits_tint_preset():
    from tint_core.pipeline.presets import digits_tint_config

    assert BenchmarkConfig.from_yaml(EXAMPLES / "digits-tint.yaml") == digits_tint_config(1, 10)


@pytest.mark.parametrize("package", ["tint_core.diffusion", "tint_core.evaluation"])
def test_each_lazy_export_is_its_home_modules_object(package):
    opened = importlib.import_module(package)
    for home, names in opened._HOMES.items():
        module = importlib.import_module(f"{package}.{home}")
        for name in names:
            assert getattr(opened, name) is getattr(module, name), name
    assert opened.__all__ == sorted(name for names in opened._HOMES.values() for name in names)
    with pytest.raises(AttributeError, match="has no attribute 'load_backbones'"):
        opened.load_backbones  # noqa: B018


@pytest.mark.parametrize("model", [BenchmarkConfig, DistillAppConfig, BenchmarkRequest, DistillRequest])
def test_every_section_and_field_of_the_form_has_a_human_title(model):
    schema = model.model_json_schema()
    sections = {name: definition["title"] for name, definition in schema.get("$defs", {}).items()}
    # No class names: "Where units run", not "ExecutionConfig" (two BackboneConfig classes get qualified names).
    assert not [title for name, title in sections.items() if title == name.rsplit("__", 1)[-1]
                or title.endswith(("Config", "Setup", "Model")) or "_" in title], sections  # fmt: skip
    assert sections.get("ExecutionConfig", "Where units run") == "Where units run"
    assert schema["title"] in ("Benchmark", "Distil a student", "Benchmark run")
    for definition in [schema, *schema.get("$defs", {}).values()]:
        for name, field in definition["properties"].items():
            title = field.get("title")  # a section's field shows its section's title
            assert title is None and "$ref" in field or title and "_" not in title and title[0].isupper(), name
    if model is BenchmarkConfig:
        episodes = schema["$defs"]["EpisodeConfig"]["properties"]
        assert [episodes[name]["title"] for name in ("n_way", "k_shot", "n_query")] == [
            "Classes per episode (N)", "Supports per class (K)", "Queries per class (Q)"]  # fmt: skip
        assert schema["$defs"]["AugmentConfig"]["properties"]["hflip_probability"]["title"] == \
            "Horizontal flip probability"  # fmt: skip


def test_a_run_request_is_its_preset_with_the_persons_choices_and_overrides():
    from tint_core.pipeline.presets import smoke_config
    from tint_core.pipeline.requests import BenchmarkRequest

    assert BenchmarkRequest().resolve() == demo_config()
    request = BenchmarkRequest(preset="smoke", n_way=4, episodes=3, methods=["supports_only", "tint"], store="s",
                               fan_out="deployments", overrides=["evaluation.target_half_width=0.05"])  # fmt: skip
    smoke = smoke_config("s")
    assert request.resolve() == smoke.updated(
        episodes=smoke.episodes.updated(n_way=4, episodes=3), methods=["supports_only", "tint"],
        execution=smoke.execution.updated(fan_out="deployments"),
        evaluation=smoke.evaluation.updated(target_half_width=0.05),
    )  # fmt: skip
    # A whole configuration replaces the preset; the choices still apply over it.
    assert BenchmarkRequest(k_shot=5).resolve(smoke).episodes == smoke.episodes.updated(k_shot=5)
    assert BenchmarkRequest().resolve(smoke) == smoke


def test_a_run_request_refuses_bad_choices_in_one_line():
    from tint_core.config import ConfigError
    from tint_core.pipeline.requests import BenchmarkRequest, DistillRequest

    with pytest.raises(ConfigError, match="unknown field 'evaluation.half_width'"):
        BenchmarkRequest(overrides=["evaluation.half_width=0.05"]).resolve()
    with pytest.raises(ConfigError, match="greater than or equal to 2"):
        BenchmarkRequest.from_mapping({"episodes": 1})
    with pytest.raises(ConfigError, match="unknown method 'tnt'"):
        BenchmarkRequest.from_mapping({"methods": ["tnt"]})
    digits = DistillRequest(supports="in", output="out", preset="digits", store="s").resolve()
    assert digits.base is not None and digits.store == "s" and digits.generator.specialization.backbone.source == "digits"
    assert DistillRequest(supports="in", output="out").resolve() == DistillAppConfig(supports="in", output="out")
