"""What must never happen: unpickling a weights file, a store path outside its root, a class name that is a path."""

import re
from pathlib import Path

import pytest

from tint_core.store import ArtifactStore

REPO = Path(__file__).parents[1]
SOURCES = [path for folder in ("tint_core", "tasks", "flows", "benchmarks") for path in (REPO / folder).rglob("*.py")]
HOSTILE = ["..", "../outside", "/etc/passwd", "a/../../b", "nul\x00byte", "x" * 300, "", ".hidden", "back\\slash"]


def test_weights_are_read_as_safetensors_or_with_weights_only():
    loads, pretrained, pickles = [], [], []
    for path in SOURCES:
        text = path.read_text()
        for call in re.finditer(r"torch\.load\(([^)]*)\)", text):
            loads.append((path.name, "weights_only=True" in call.group(1)))
        # every from_pretrained that reads weights (a model, not a tokenizer, scheduler or config)
        for call in re.finditer(r"(\w+)\.from_pretrained\(([^)]*)\)", text):
            if call.group(1).endswith(("Model", "KL", "Resolution")):
                pretrained.append((path.name, call.group(1), "use_safetensors=True" in call.group(2)))
        pickles += [path.name for word in ("import pickle", "pickle.load", "cloudpickle") if word in text]
    assert loads and all(safe for _, safe in loads), loads
    assert pretrained and all(safe for *_, safe in pretrained), pretrained
    assert not pickles, pickles


@pytest.mark.parametrize("key", HOSTILE + ["0" * 63, "G" * 64])
def test_an_artifact_key_is_a_digest_and_nothing_else(tmp_path, key):
    store = ArtifactStore(str(tmp_path / "store"))
    for call in (store.get, store.inspect, store.ref, store.exists):
        with pytest.raises(ValueError, match="artifact key must be a 64-character lower-case hex string"):
            call(key)
    assert not any(path for path in tmp_path.rglob("*") if "store" not in path.parts)


@pytest.mark.parametrize("name", HOSTILE)
def test_a_log_entry_cannot_leave_its_log(tmp_path, name):
    store = ArtifactStore(str(tmp_path / "store"))
    for log, entry in (("runs", name), (name, "entry.json")):
        with pytest.raises(ValueError, match="log path"):
            store.append_log(log, entry, b"data")
    assert [path for path in tmp_path.rglob("*") if path.is_file()] == []


@pytest.mark.parametrize("name", ["..", "../outside", "a/b", "nul\x00byte", "x" * 300, "", "back\\slash"])
def test_a_class_name_is_never_a_path(tmp_path, name):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tint_core.data.datasets import FewShotDataset

    pq.write_table(pa.table({"path": ["a.png"], "class": [name], "split": ["novel"]}), tmp_path / "manifest.parquet")
    with pytest.raises(ValueError, match=r"cannot name a class \(no '/'"):
        FewShotDataset.from_manifest(str(tmp_path / "manifest.parquet"))
