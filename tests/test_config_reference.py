import subprocess
import sys
from typing import Literal, get_args

import pytest
from pydantic import BaseModel, Field

from tint_core.config import TintConfig
from tint_core.config_reference import DOCS_PATH, HEADER, TopLevel, config_reference
from tint_core.pipeline.config import BenchmarkConfig


@pytest.fixture(scope="module")
def reference() -> str:
    return config_reference()


def leaf_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted names of every field that holds no model, through models nested in any type (Optional included)."""

    def models_in(annotation) -> list[type[BaseModel]]:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return [annotation]
        return [model for argument in get_args(annotation) for model in models_in(argument)]

    paths = []
    for name, info in model.model_fields.items():
        nested = models_in(info.annotation)
        if not nested:
            paths.append(prefix + name)
        for child in nested:
            paths += leaf_paths(child, f"{prefix}{name}.")
    return paths


def test_the_committed_reference_is_what_the_models_render(reference):
    assert DOCS_PATH.read_text() == reference, (
        "docs/configuration.md is out of date with the configuration models: "
        "run `python -m tint_core.config_reference --write`"
    )


def test_the_reference_starts_with_the_do_not_edit_header(reference):
    assert reference.splitlines()[:3] == ["# Configuration reference", "", HEADER]


def test_every_leaf_field_of_the_benchmark_appears_by_its_dotted_name(reference):
    paths = leaf_paths(BenchmarkConfig)
    assert "generator.specialization.backbone.source" in paths and "teacher.pretrain.epochs" in paths
    missing = [path for path in paths if f"`{path}`" not in reference]
    assert missing == []


def test_a_field_shows_its_description_default_and_constraints(reference):
    assert "| `episodes` | `int` | `600` | ≥ 2, ≤ 100000 | E: episodes (at least 2, for an interval). |" in reference
    assert "| [`episodes.episodes`](#episodeconfig) | `600` |" in reference
    assert '| `unit` | `"episode" \\| "class"` | `"episode"` |  | What one specialisation task covers' in reference


def test_a_default_instance_that_differs_from_its_class_shows_the_difference(reference):
    # the teacher's backbone defaults to DINO, not to the fewshot BackboneConfig's resnet12
    assert (
        "| `backbone` | [`BackboneConfig` (fewshot)](#backboneconfig-fewshot) | see [`BackboneConfig` (fewshot)]"
        '(#backboneconfig-fewshot); here `name: "vit_base_patch16_224.dino"`' in reference
    )
    assert '| [`teacher.model.backbone.name`](#backboneconfig-fewshot) | `"vit_base_patch16_224.dino"` |' in reference
    assert "| [`teacher.pretrain.epochs`](#pretrainconfig) | `30` once `teacher.pretrain` is set |" in reference


def test_each_nested_model_has_one_section_and_namesakes_are_told_apart(reference):
    assert reference.count("\n### SpecializationConfig\n") == 1
    assert reference.count("\n### AugmentConfig\n") == 1
    assert "\n### BackboneConfig (diffusion)\n" in reference and "\n### BackboneConfig (fewshot)\n" in reference


class Inner(TintConfig):
    """A nested part."""

    depth: int = Field(3, ge=1, lt=10, description="How deep it goes.")


class Throwaway(TintConfig):
    """A configuration made up for the test."""

    mode: Literal["fast", "slow"] = Field("fast", description="Which way to run.")
    inner: Inner = Field(default_factory=lambda: Inner(depth=5), description="The nested part.")
    extra: Inner | None = None
    names: list[str] = Field(default_factory=lambda: ["a", "b"], description="Some names.")
    ratio: float = 0.5
    """Documented by an attribute docstring."""


def test_a_small_configuration_renders_types_defaults_and_descriptions():
    text = config_reference([TopLevel(Throwaway, "nothing, a test.")])
    assert '| `mode` | `"fast" \\| "slow"` | `"fast"` |  | Which way to run. |' in text
    assert "| `inner` | [`Inner`](#inner) | see [`Inner`](#inner); here `depth: 5` |  | The nested part. |" in text
    assert "| `extra` | [`Inner`](#inner) \\| `None` | `null` |  |  |" in text
    assert '| `names` | `list[str]` | `["a", "b"]` |  | Some names. |' in text
    assert "| `ratio` | `float` | `0.5` |  | Documented by an attribute docstring. |" in text
    assert "| `depth` | `int` | `3` | ≥ 1, < 10 | How deep it goes. |" in text
    assert "### Inner\n\nA nested part." in text and "Used at: Throwaway `inner`, `extra`." in text
    assert "| [`inner.depth`](#inner) | `5` |" in text
    assert "| [`extra.depth`](#inner) | `3` once `extra` is set |" in text
    assert config_reference([TopLevel(Throwaway, "nothing, a test.")]) == text  # deterministic


def test_rendering_the_reference_never_imports_prefect():
    code = ("import sys\n"
            "from tint_core.config_reference import config_reference\n"
            "config_reference()\n"
            "assert 'prefect' not in sys.modules, sorted(m for m in sys.modules if m.startswith('prefect'))\n")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
