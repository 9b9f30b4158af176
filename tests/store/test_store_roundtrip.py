"""Store behaviour on a local folder and on S3 (moto): round trips, idempotence, verification, quarantine, gc."""

import json
import time
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest
import torch

from tint_core.store import (
    ArtifactNotFoundError,
    ArtifactRef,
    ArtifactStore,
    CorruptArtifactError,
    DigestMismatchError,
    ImageSet,
    PartCache,
    artifact_key,
    sha256_hex,
)


def key_for(name: str) -> str:
    return artifact_key(step="test", version=1, params={"name": name})


def sample_parts(seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {
        "weights": {"emb": torch.randn(4, 8, generator=generator), "ids": torch.arange(3)},
        "labels": pa.table({"image": [0, 1, 2], "logit": [0.5, -1.0, 2.25]}),
        "images": ImageSet.from_tensors(torch.rand(2, 3, 6, 6, generator=generator), {"class": ["a", "b"]}),
        "report": {"seed": seed, "ok": True},
    }


def part_path(store: ArtifactStore, key: str, name: str) -> str:
    return f"artifacts/{key}/{store.inspect(key).part_path(name)}"


def test_every_part_type_round_trips(store):
    parts = sample_parts()
    key = key_for("roundtrip")
    assert not store.exists(key)
    ref = store.put(key, parts, step="test", params={"lr": 1.0}, inputs={"src": "c" * 64})
    assert store.exists(key)
    loaded = store.get(ref).load()
    assert set(loaded) == set(parts)
    for name, tensor in parts["weights"].items():
        assert torch.equal(loaded["weights"][name], tensor)
    assert loaded["labels"].equals(parts["labels"])
    assert loaded["images"].png == parts["images"].png
    assert loaded["images"].metadata.equals(parts["images"].metadata)
    assert loaded["report"] == parts["report"]


def test_manifest_records_step_params_inputs_sizes_and_creation_time(store):
    key = key_for("manifest")
    before = datetime.now(timezone.utc)
    ref = store.put(key, sample_parts(), step="test", params={"lr": 1.0}, inputs={"src": "c" * 64})
    manifest = store.inspect(key)
    assert (manifest.key, manifest.step, manifest.inputs) == (key, "test", {"src": "c" * 64})
    assert manifest.params == {"lr": 1}  # canonicalised
    assert before - timedelta(seconds=1) <= manifest.created <= datetime.now(timezone.utc)
    assert manifest.digest == ref.digest
    artifact = store.get(key)
    assert manifest.size == sum(len(artifact.read_bytes(name)) for name in artifact.names)


def test_missing_artifact_is_not_found(store):
    with pytest.raises(ArtifactNotFoundError, match=store.url):
        store.get(key_for("missing"))
    with pytest.raises(KeyError, match="no part 'nope'"):
        store.put(key_for("one"), {"a": [1]}, step="test") and store.get(key_for("one"))["nope"]


def test_second_put_of_a_key_keeps_the_first_artifact(store):
    key = key_for("idempotent")
    first = store.put(key, sample_parts(seed=1), step="test")
    second = store.put(key, sample_parts(seed=2), step="test")
    assert second == first
    assert store.get(key)["report"]["seed"] == 1
    assert len([f for f in store._backend.list_dir(f"artifacts/{key}") if f != "manifest.json"]) == 1


def test_artifact_digest_depends_on_content_only_and_feeds_downstream_keys(store):
    same_a = store.put(key_for("a"), sample_parts(seed=1), step="test")
    same_b = store.put(key_for("b"), sample_parts(seed=1), step="other")
    different = store.put(key_for("c"), sample_parts(seed=2), step="test")
    assert same_a.digest == same_b.digest != different.digest
    assert artifact_key(step="next", version=1, inputs={"x": same_a}) == artifact_key(
        step="next", version=1, inputs={"x": same_a.digest}
    )
    assert ArtifactRef.model_validate_json(same_a.model_dump_json()) == same_a


def test_list_filters_by_step_and_reports_sizes(store):
    store.put(key_for("x"), {"a": [1]}, step="one")
    store.put(key_for("y"), {"a": [1, 2, 3]}, step="two")
    assert [m.step for m in store.list()] == ["one", "two"]
    (only,) = store.list(step="two")
    assert only.key == key_for("y") and only.size == len(b"[1,2,3]")


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda data: data[:-1] + bytes([data[-1] ^ 1]), "SHA-256"),
        (lambda data: data[: len(data) // 2], "bytes"),
        (None, "missing"),
    ],
    ids=["flipped-bit", "truncated", "deleted"],
)
def test_damaged_part_is_detected_quarantined_and_recomputable(store, damage, reason):
    key, other = key_for("victim"), key_for("bystander")
    ref = store.put(key, sample_parts(), step="test")
    store.put(other, sample_parts(seed=3), step="test")
    path = part_path(store, key, "weights")
    if damage is None:
        store._backend.delete(path)
    else:
        store._backend.write(path, damage(store._backend.read(path)))
    if store.cache:
        store.cache.clear()

    artifact = store.get(ref)
    with pytest.raises(CorruptArtifactError, match=reason) as raised:
        artifact["weights"]
    assert raised.value.key == key
    assert raised.value.quarantined_to.startswith(f"{store.url}/quarantine/{key}-")
    assert "quarantined" in str(raised.value)
    assert not store.exists(key)
    with pytest.raises(ArtifactNotFoundError):
        store.get(key)
    quarantine = raised.value.quarantined_to[len(store.url) + 1:]
    note = json.loads(store._backend.read(f"{quarantine}/reason.json"))
    assert note["key"] == key and reason in note["reason"]
    assert store._backend.exists(f"{quarantine}/manifest.json")

    store.put(key, sample_parts(), step="test")  # the step recomputes it
    assert store.verify().valid == sorted([key, other]) or set(store.verify().valid) == {key, other}


def test_verify_reports_and_quarantines_only_the_corrupt_artifacts(store):
    good, bad, garbled = key_for("good"), key_for("bad"), key_for("garbled")
    for key in (good, bad, garbled):
        store.put(key, sample_parts(), step="test")
    path = part_path(store, bad, "labels")
    store._backend.write(path, b"not parquet")
    store._backend.write(f"artifacts/{garbled}/manifest.json", b'{"format": "tint-artifact/1", "trunc')

    dry = store.verify(quarantine=False)
    assert set(dry.corrupt) == {bad, garbled} and dry.quarantined == {} and dry.valid == [good]
    assert store.exists(bad)

    report = store.verify()
    assert not report.ok
    assert set(report.quarantined) == {bad, garbled}
    assert "labels" in report.corrupt[bad] and "manifest" in report.corrupt[garbled]
    assert "2 corrupt" in str(report)
    assert not store.exists(bad) and not store.exists(garbled) and store.exists(good)
    assert store.verify().ok


def test_get_with_a_stale_reference_is_refused(store):
    key = key_for("recomputed")
    old = store.put(key, sample_parts(seed=1), step="test")
    store.quarantine(key, "test")
    new = store.put(key, sample_parts(seed=2), step="test")
    assert new.digest != old.digest
    with pytest.raises(DigestMismatchError, match="recomputed"):
        store.get(old)
    assert store.get(new)["report"]["seed"] == 2


def test_quarantine_leaves_an_artifact_recomputed_meanwhile_alone(store):
    key = key_for("raced")
    store.put(key, sample_parts(), step="test")
    assert store.quarantine(key, "stale reader", expected_manifest=b"some other manifest") is None
    assert store.get(key).load()


def test_gc_removes_abandoned_writer_folders_only(store):
    done, crashed = key_for("done"), key_for("crashed")
    store.put(done, sample_parts(), step="test")
    store._backend.write(f"artifacts/{done}/20000101T000000-loser/report.json", b"{}")
    store._backend.write(f"artifacts/{crashed}/20000101T000000-dead/weights.safetensors", b"partial")

    assert store.gc().files == 0  # too recent for the default age
    report = store.gc(older_than=0)
    assert report.files == 2 and report.bytes == len(b"{}") + len(b"partial")
    assert store._backend.files(f"artifacts/{crashed}") == []
    assert store.verify().valid == [done]
    assert store.get(done).load()


def test_bad_keys_and_part_names_fail_before_anything_is_written(store):
    with pytest.raises(ValueError, match="key"):
        store.put("not-a-key", {"a": 1}, step="test")
    with pytest.raises(ValueError, match="part name"):
        store.put(key_for("bad"), {"ok": 1, "../escape": 2}, step="test")
    with pytest.raises(TypeError, match="tensors"):
        store.put(key_for("bad"), {"t": torch.zeros(2)}, step="test")
    assert store._backend.files("artifacts") == []


def test_reference_from_another_store_is_refused(store, tmp_path):
    other = ArtifactStore(tmp_path / "other")
    ref = other.put(key_for("elsewhere"), {"a": 1}, step="test")
    with pytest.raises(ValueError, match="reference to store"):
        store.get(ref)


def test_local_store_url_is_normalised(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert ArtifactStore("./a/../store/").url == ArtifactStore(tmp_path / "store").url == f"{tmp_path}/store"
    assert ArtifactStore(f"file://{tmp_path}/store").url == f"{tmp_path}/store"


def test_s3_parts_are_served_from_the_read_cache_after_the_first_read(s3_url, tmp_path):
    store = ArtifactStore(s3_url, cache_dir=tmp_path / "cache")
    key = key_for("cached")
    store.put(key, sample_parts(), step="test")
    expected = store.get(key).read_bytes("weights")
    entry = store.cache._entry(store.inspect(key).parts["weights"].sha256)
    assert entry.read_bytes() == expected

    store._backend.delete(part_path(store, key, "weights"))  # only the cache can answer now
    assert store.get(key).read_bytes("weights") == expected

    entry.write_bytes(b"damaged cache entry")  # a damaged entry is never served: S3 is asked, finds nothing
    with pytest.raises(CorruptArtifactError, match="missing"):
        store.get(key).read_bytes("weights")


def test_local_stores_do_not_cache(tmp_path):
    assert ArtifactStore(tmp_path / "store", cache_dir=tmp_path / "cache").cache is None


def test_part_cache_stays_within_its_bound_and_evicts_least_recently_used(tmp_path):
    cache = PartCache(tmp_path / "cache", max_bytes=1000)
    blobs = [bytes([i]) * 300 for i in range(4)]
    digests = [sha256_hex(data) for data in blobs]
    for digest, data in zip(digests[:3], blobs[:3], strict=True):
        cache.put(digest, data)
        time.sleep(0.01)  # distinct modification times
    assert cache.get(digests[0]) == blobs[0]  # now the most recently used
    cache.put(digests[3], blobs[3])  # 1200 bytes: the least recently used entry must go
    assert cache.size() <= 1000
    assert [cache.get(digest) is not None for digest in digests] == [True, False, True, True]
    cache.put(sha256_hex(b"x" * 1001), b"x" * 1001)  # larger than the bound: never cached
    assert cache.get(sha256_hex(b"x" * 1001)) is None


def test_verify_reads_large_artifacts_in_bounded_batches(store, monkeypatch):
    import tint_core.store.store as store_module

    monkeypatch.setattr(store_module, "_VERIFY_BATCH_BYTES", 1)  # one part per batch
    good, bad = key_for("batched-good"), key_for("batched-bad")
    store.put(good, sample_parts(), step="test")
    store.put(bad, sample_parts(), step="test")
    store._backend.write(part_path(store, bad, "report"), b'{"seed": 9}')
    report = store.verify(quarantine=False)
    assert report.valid == [good] and list(report.corrupt) == [bad]


def test_reference_uri_names_the_store_and_key(store):
    ref = store.put(key_for("uri"), {"a": 1}, step="test")
    assert ref.uri == f"{store.url}/artifacts/{ref.key}"


def test_gc_removes_an_empty_writer_folder_left_by_a_writer_killed_before_its_first_file(tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    key = key_for("empty-writer")
    empty = tmp_path / "store" / "artifacts" / key / "20260101T000000-deadbeef"
    empty.mkdir(parents=True)
    store.gc()  # the default age protects a writer that may still be starting
    assert empty.is_dir()
    store.gc(older_than=0)
    assert not empty.exists()


def test_verify_through_the_read_cache_downloads_a_part_once_and_still_catches_damage(s3_url, tmp_path):
    store = ArtifactStore(s3_url, cache_dir=tmp_path / "cache")
    key = key_for("verified")
    store.put(key, sample_parts(), step="test")
    assert store.verify([key], use_cache=True).valid == [key]  # fills the cache
    store._backend.delete(part_path(store, key, "weights"))
    assert store.verify([key], use_cache=True).valid == [key]  # the verified local copy answers
    report = store.verify([key])  # the default checks the remote bytes themselves
    assert key in report.quarantined and not store.exists(key)


def test_check_writable_leaves_nothing_behind_and_names_an_unwritable_store(store_url, tmp_path):
    from tint_core.store import StoreAccessError

    store = ArtifactStore(store_url, cache_dir=tmp_path / "cache")
    store.check_writable()
    assert store._backend.files("") == []
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreAccessError, match="a-file"):
        ArtifactStore(blocker / "store").check_writable()
