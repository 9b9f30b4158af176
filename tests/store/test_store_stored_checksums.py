"""Checking a remote artifact by what S3 says of its parts — the size, and the SHA-256 S3 computed when the part was
written — instead of downloading them (``verify(deep=False)``, a cached rerun's reuse check). Every kind of damage is
still caught: by the size or the stored SHA-256 without a download, or by reading the parts S3 keeps no SHA-256 for.
Requests are counted by a proxy on 127.0.0.1 in front of moto."""

import pytest

from tests.store.faulty_endpoint import FaultyEndpoint
from tests.store.test_store_roundtrip import key_for, part_path, sample_parts
from tint_core.store import ArtifactStore


@pytest.fixture
def counted(s3_env, s3_url, monkeypatch, tmp_path):
    """A store on S3 whose every request goes through a counting proxy (no fault injected), and the proxy."""
    with FaultyEndpoint(s3_env["AWS_ENDPOINT_URL"], rate=0.0, seed=0, slow_seconds=0.0) as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint.url)
        yield ArtifactStore(s3_url, cache_dir=tmp_path / "cache"), endpoint


def _flip(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def _plain_put(store: ArtifactStore, path: str, data: bytes) -> None:
    """A PUT as another tool makes it: botocore's default CRC32, no SHA-256 kept."""
    store._backend.fs.pipe_file(store._backend._full(path), data)


def test_a_stored_check_reads_the_manifest_and_heads_the_parts_where_a_full_one_downloads_them(counted):
    store, endpoint = counted
    key = key_for("reused")
    store.put(key, sample_parts(), step="test")
    manifest = store.inspect(key)
    endpoint.reset_counts()
    assert store.verify([key], deep=False).valid == [key]
    stored = dict(endpoint.answered), sum(endpoint.answered_bytes.values())
    endpoint.reset_counts()
    assert store.verify([key]).valid == [key]
    full = dict(endpoint.answered), sum(endpoint.answered_bytes.values())
    assert stored[0] == {"GET": 1, "HEAD": len(manifest.parts)}  # the manifest, and one HEAD per part
    assert stored[1] < 2000 < manifest.size  # the manifest's bytes only
    assert full[0]["GET"] == 1 + len(manifest.parts) and full[1] > manifest.size


@pytest.mark.parametrize(
    ("damage", "reason", "downloads"),
    [
        (lambda store, path, data: store._backend.write(path, _flip(data)), "SHA-256", False),
        (lambda store, path, data: _plain_put(store, path, _flip(data)), "SHA-256", True),
        (lambda store, path, data: store._backend.write(path, data[: len(data) // 2]), "bytes", False),
        (lambda store, path, data: store._backend.delete(path), "missing", False),
    ],
    ids=["other-bytes-with-their-sha256", "other-bytes-without-a-sha256", "truncated", "deleted"],
)
def test_a_stored_check_catches_every_damage_and_downloads_only_what_s3_cannot_vouch_for(counted, damage, reason,
                                                                                       downloads):  # fmt: skip
    store, endpoint = counted
    key = key_for("damaged")
    store.put(key, sample_parts(), step="test")
    path = part_path(store, key, "weights")
    damage(store, path, store._backend.read(path))
    endpoint.reset_counts()
    assert reason in store.verify([key], deep=False, quarantine=False).corrupt[key]
    read_a_part = endpoint.answered["GET"] > 1  # more than the manifest
    assert read_a_part == downloads, dict(endpoint.answered)
    assert key in store.verify([key], deep=False).quarantined and not store.exists(key)


def test_parts_written_without_a_sha256_are_read_once_per_machine_then_served_by_the_read_cache(counted):
    store, endpoint = counted
    key = key_for("older")
    store.put(key, sample_parts(), step="test")
    manifest = store.inspect(key)
    for name in manifest.parts:  # as tint wrote them before it asked S3 for a SHA-256
        path = part_path(store, key, name)
        _plain_put(store, path, store._backend.read(path))
    store.cache.clear()
    endpoint.reset_counts()
    assert store.verify([key], deep=False, use_cache=True).valid == [key]
    assert endpoint.answered["GET"] == 1 + len(manifest.parts)  # each part downloaded and hashed
    endpoint.reset_counts()
    assert store.verify([key], deep=False, use_cache=True).valid == [key]
    assert endpoint.answered["GET"] == 1  # the manifest; the parts' verified copies answer from the cache


def test_a_local_store_is_always_checked_deep(tmp_path):
    store = ArtifactStore(tmp_path / "store")
    key = key_for("local")
    store.put(key, sample_parts(), step="test")
    path = part_path(store, key, "weights")
    store._backend.write(path, _flip(store._backend.read(path)))
    report = store.verify([key], deep=False)
    assert "SHA-256" in report.corrupt[key]
