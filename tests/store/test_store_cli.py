"""`tint store list|verify|gc` on a local folder and on S3 (moto on 127.0.0.1)."""

from typer.testing import CliRunner

from tint_core.cli import app
from tint_core.store import artifact_key

runner = CliRunner()


def key_for(name: str) -> str:
    return artifact_key(step="cli-test", version=1, params={"name": name})


def test_list_shows_each_artifact_with_its_step(store, store_url):
    store.put(key_for("a"), {"report": {"a": 1}}, step="specialize")
    store.put(key_for("b"), {"report": {"b": 2}}, step="generate")
    result = runner.invoke(app, ["store", "list", store_url])
    assert result.exit_code == 0, result.output
    assert key_for("a")[:16] in result.stdout and key_for("b")[:16] in result.stdout
    assert "2 artifacts" in result.stderr

    only = runner.invoke(app, ["store", "list", store_url, "--step", "generate"])
    assert key_for("b")[:16] in only.stdout and key_for("a")[:16] not in only.stdout


def test_verify_fails_on_a_corrupt_part_and_names_the_artifact(store, store_url):
    good, bad = key_for("good"), key_for("bad")
    store.put(good, {"report": {"ok": True}}, step="test")
    store.put(bad, {"report": {"ok": False}}, step="test")
    assert runner.invoke(app, ["store", "verify", store_url]).exit_code == 0

    part = f"artifacts/{bad}/{store.inspect(bad).part_path('report')}"
    store._backend.write(part, b'{"ok": true}')  # other bytes than the manifest lists
    result = runner.invoke(app, ["store", "verify", store_url, "--no-quarantine"])
    assert result.exit_code == 1
    assert bad in result.stdout and "1 valid, 1 corrupt" in result.stdout
    assert store.exists(bad)  # --no-quarantine only reports

    result = runner.invoke(app, ["store", "verify", store_url])
    assert result.exit_code == 1 and f"quarantined {bad}" in result.stderr
    assert not store.exists(bad) and store.exists(good)


def test_gc_removes_only_old_leftovers(store, store_url):
    done = key_for("done")
    store.put(done, {"report": {"x": 1}}, step="test")
    store._backend.write(f"artifacts/{key_for('crashed')}/20000101T000000-dead/weights.safetensors", b"partial")
    assert "removed 0 files" in runner.invoke(app, ["store", "gc", store_url]).stdout  # too recent by default
    result = runner.invoke(app, ["store", "gc", store_url, "--older-than", "0"])
    assert result.exit_code == 0 and "removed 1 files, 7 bytes" in result.stdout
    assert store.verify().valid == [done]


def test_a_store_that_cannot_be_opened_is_an_error_not_a_traceback(tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    result = runner.invoke(app, ["store", "list", str(not_a_folder)])
    assert result.exit_code == 1 and result.stderr.startswith("error:")
