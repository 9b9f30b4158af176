import enum
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import BaseModel

from tint_core.config import TintConfig
from tint_core.store import ArtifactRef, artifact_key, canonical_json, normalize_path

DIGEST_A = "a" * 64
DIGEST_B = "b" * 64


class StepParams(TintConfig):
    lr: float = 1e-3
    steps: int = 5000
    prompt: str = "A photo of an #object"
    data: Path = Path("data")


class Color(enum.Enum):
    RED = "red"


def key(**overrides):
    spec = {
        "step": "ti",
        "version": 1,
        "params": {"lr": 1e-3, "steps": 5000, "sizes": [512, 224]},
        "inputs": {"supports": DIGEST_A},
        "backbone": {"id": "sd15", "revision": "main"},
    }
    return artifact_key(**(spec | overrides))


def test_key_is_a_sha256_hex_string_and_stable_across_calls():
    assert key() == key()
    assert len(key()) == 64 and all(c in "0123456789abcdef" for c in key())


def test_same_inputs_spelled_differently_give_the_same_key():
    reordered = {"sizes": (512, 224), "steps": 5000.0, "lr": 0.001}
    assert key(params=reordered) == key()
    assert key(version="1") == key()
    assert key(inputs={"supports": DIGEST_A.upper()}) == key()
    assert key(inputs={"supports": ArtifactRef(store="/s", key=DIGEST_B, digest=DIGEST_A)}) == key()
    assert key(backbone={"revision": "main", "id": "sd15"}) == key()
    assert key(params={"lr": np.float64(1e-3), "steps": np.int64(5000), "sizes": [512, 224]}) == key()


def test_pydantic_models_and_equal_dicts_give_the_same_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = StepParams()
    as_dict = {"lr": 0.001, "steps": 5000, "prompt": "A photo of an #object", "data": Path(tmp_path, "data")}
    assert artifact_key(step="s", version=1, params=model) == artifact_key(step="s", version=1, params=as_dict)


@pytest.mark.parametrize("spelling", ["./data", "data/", "x/../data", "./x/./../data//", "{tmp}/data", "~/data"])
def test_path_spellings_normalise_to_one_key(spelling, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    spelled = Path(spelling.format(tmp=tmp_path))
    absolute = Path(tmp_path) / "data"
    assert artifact_key(step="s", version=1, params={"data": spelled}) == artifact_key(
        step="s", version=1, params={"data": absolute}
    )
    assert artifact_key(step="s", version=1, params=StepParams(data=spelled)) == artifact_key(
        step="s", version=1, params=StepParams(data=absolute)
    )


def test_normalize_path_spells_local_paths_and_urls_one_way(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert normalize_path("a/../b/") == Path(tmp_path, "b").as_posix()
    assert normalize_path(f"file://{tmp_path}/c/./") == Path(tmp_path, "c").as_posix()
    assert normalize_path("S3://bucket/a/../prefix//") == "s3://bucket/prefix"
    assert normalize_path("s3://bucket/") == "s3://bucket"


@pytest.mark.parametrize(
    "change",
    [
        {"step": "nti"},
        {"version": 2},
        {"params": {"lr": 1e-4, "steps": 5000, "sizes": [512, 224]}},
        {"params": {"lr": 1e-3, "steps": 5001, "sizes": [512, 224]}},
        {"params": {"lr": 1e-3, "steps": 5000, "sizes": [224, 512]}},
        {"params": {"lr": 1e-3, "steps": 5000, "sizes": [512, 224], "extra": None}},
        {"inputs": {"supports": DIGEST_B}},
        {"inputs": {"queries": DIGEST_A}},
        {"inputs": {"supports": DIGEST_A, "queries": DIGEST_B}},
        {"backbone": {"id": "sd15", "revision": "other"}},
        {"backbone": "sd15"},
    ],
)
def test_any_change_of_step_version_parameter_input_or_backbone_changes_the_key(change):
    assert key(**change) != key()


def test_canonical_json_floats_are_integral_when_exact_and_round_trip_otherwise():
    assert canonical_json({"b": 1.0, "a": -0.0, "c": 0.1, "d": 1e-7, "e": 2.0**60}) == (
        '{"a":0,"b":1,"c":0.1,"d":1e-07,"e":1.152921504606847e+18}'
    )
    assert canonical_json(1.0) == canonical_json(1)
    assert float(canonical_json(0.1 + 0.2)) == 0.1 + 0.2


def test_canonical_json_of_other_values():
    assert canonical_json({"t": (1, [True, None]), "e": Color.RED, 3: "int key"}) == (
        '{"3":"int key","e":"red","t":[1,[true,null]]}'
    )


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        ({"a": {1, 2}}, TypeError),
        ({"a": b"bytes"}, TypeError),
        ({"a": torch.zeros(2)}, TypeError),
        ({"a": np.zeros(2)}, TypeError),
        ({"a": object()}, TypeError),
        ({(1, 2): "tuple key"}, TypeError),
    ],
)
def test_values_without_a_canonical_form_are_refused_with_their_location(value, error):
    with pytest.raises(error, match=r"\$"):
        canonical_json(value)


def test_bad_step_version_or_input_digest_is_refused():
    with pytest.raises(ValueError, match="step"):
        key(step="")
    with pytest.raises(ValueError, match="version"):
        key(version=1.5)
    with pytest.raises(ValueError, match="supports"):
        key(inputs={"supports": "not-a-digest"})


def test_models_nested_in_dicts_are_dumped_like_top_level_models():
    class Inner(BaseModel):
        x: float = 2.0

    assert canonical_json({"inner": Inner()}) == '{"inner":{"x":2}}'


def test_relative_path_keys_depend_on_the_working_directory(tmp_path, monkeypatch):
    # Documented: local paths are made absolute, so the same relative spelling in another folder is another input.
    monkeypatch.chdir(tmp_path)
    here = artifact_key(step="s", version=1, params={"data": Path("data")})
    os.mkdir(tmp_path / "other")
    monkeypatch.chdir(tmp_path / "other")
    assert artifact_key(step="s", version=1, params={"data": Path("data")}) != here
