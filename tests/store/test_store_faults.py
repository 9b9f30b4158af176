"""Injected S3 faults: transient ones are survived, permanent ones fail at once and clearly, secrets never leak."""

import logging
import secrets
import socket
import traceback

import fsspec
import pytest
import torch
from faults import PERMANENT, TRANSIENT, FaultyFilesystem

from tint_core.store import (
    ArtifactStore,
    CorruptArtifactError,
    RetryPolicy,
    StoreAccessError,
    StoreError,
    StoreRetryError,
    artifact_key,
)
from tint_core.store.backends import S3_OPTIONS

KEY = artifact_key(step="faults", version=1)
PARTS = {"weights": {"w": torch.arange(10.0)}, "info": {"a": 1}}


def fresh_s3fs():
    filesystem = fsspec.filesystem("s3", **S3_OPTIONS)
    filesystem.retries = 1
    return filesystem


class Sleeps(list):
    """Records backoff delays instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def policy(sleeps: Sleeps, attempts: int = 6) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, base_delay=0.1, max_delay=0.4, sleep=sleeps)


@pytest.mark.parametrize("fault", list(TRANSIENT))
def test_transient_errors_are_retried_and_the_work_completes(s3_url, tmp_path, fault, caplog):
    faults = [TRANSIENT[fault]] * 2
    faulty = FaultyFilesystem(
        fresh_s3fs(),
        plan={"ls": faults, "exists": faults, "cat_file": faults, "pipe_file": faults, "find": faults},
    )
    sleeps = Sleeps()
    store = ArtifactStore(s3_url, filesystem=faulty, retry=policy(sleeps), cache_bytes=0)
    ref = store.put(KEY, PARTS, step="faults")
    assert store.exists(KEY)
    assert torch.equal(store.get(ref)["weights"]["w"], PARTS["weights"]["w"])
    assert store.verify().valid == [KEY]
    assert store.gc(older_than=0).files == 0
    assert faulty.pending() == 0, "every planned fault was raised"
    assert len(sleeps) == len(faulty.raised) and all(0 <= delay <= 0.4 for delay in sleeps)
    assert sum("transient" in record.getMessage() for record in caplog.records) == len(faulty.raised)


def test_a_transient_error_that_persists_gives_up_after_the_bounded_attempts(s3_url):
    faulty = FaultyFilesystem(fresh_s3fs(), plan={"pipe_file": [TRANSIENT["SlowDown"]] * 100})
    sleeps = Sleeps()
    store = ArtifactStore(s3_url, filesystem=faulty, retry=policy(sleeps, attempts=3))
    with pytest.raises(StoreRetryError, match=r"after 3 attempts.*reduce your request rate") as raised:
        store.put(KEY, {"info": {"a": 1}}, step="faults")
    assert s3_url in str(raised.value)
    assert len(sleeps) == 2
    assert not store.exists(KEY)


@pytest.mark.parametrize("fault", list(PERMANENT))
def test_permanent_errors_fail_at_once_naming_the_store(s3_url, fault):
    faulty = FaultyFilesystem(fresh_s3fs(), plan={"pipe_file": [PERMANENT[fault]] * 100})
    sleeps = Sleeps()
    store = ArtifactStore(s3_url, filesystem=faulty, retry=policy(sleeps))
    with pytest.raises(StoreAccessError, match="PermissionError") as raised:
        store.put(KEY, {"info": {"a": 1}}, step="faults")
    assert s3_url in str(raised.value)
    assert sleeps == [] and len(faulty.raised) == 1


def test_access_denied_fails_when_the_store_is_opened(s3_url):
    faulty = FaultyFilesystem(fresh_s3fs(), plan={"ls": [PERMANENT["AccessDenied"]]})
    with pytest.raises(StoreAccessError, match=f"open / in store {s3_url} failed: PermissionError: Access Denied"):
        ArtifactStore(s3_url, filesystem=faulty, retry=policy(Sleeps()))


def test_a_missing_bucket_fails_when_the_store_is_opened(s3_env):
    with pytest.raises(StoreAccessError, match="bucket of store s3://tint-no-such-bucket/x does not exist"):
        ArtifactStore("s3://tint-no-such-bucket/x")


def test_an_unreachable_endpoint_fails_after_a_few_quick_attempts(s3_env, monkeypatch):
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    sleeps = Sleeps()
    with pytest.raises(StoreAccessError, match="cannot reach store s3://bucket/x .*AWS_ENDPOINT_URL") as raised:
        ArtifactStore("s3://bucket/x", retry=policy(sleeps))
    assert f"127.0.0.1:{port}" in str(raised.value)
    assert len(sleeps) == 2  # three attempts at open, whatever the policy allows later


def test_a_lost_answer_to_the_manifest_write_does_not_lose_the_artifact(s3_url):
    # The manifest PUT lands but its answer is lost; the retried conditional PUT then finds "its own" manifest.
    faulty = FaultyFilesystem(fresh_s3fs(), late={"pipe_file": [TRANSIENT["connection reset"]]},
                              when=lambda args, kwargs: kwargs.get("mode") == "create")
    store = ArtifactStore(s3_url, filesystem=faulty, retry=policy(Sleeps()))
    ref = store.put(KEY, PARTS, step="faults")
    assert faulty.pending() == 0
    assert store.get(ref).load()["info"] == {"a": 1}
    assert store.verify().valid == [KEY]


def test_urls_with_credentials_are_refused_without_echoing_them(tmp_path):
    secret = secrets.token_hex(16)
    for url in (f"s3://AKIAEXAMPLE:{secret}@bucket/x", f"s3://bucket/x?secret_access_key={secret}"):
        with pytest.raises(ValueError, match="must not carry credentials") as raised:
            ArtifactStore(url)
        assert secret not in str(raised.value)


def test_a_planted_secret_never_appears_in_messages_or_logs(s3_env, monkeypatch, tmp_path, caplog):
    secret = secrets.token_urlsafe(24)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    caplog.set_level(logging.DEBUG)  # every logger, libraries included
    bucket_url = f"s3://tint-secret-{secrets.token_hex(4)}/store"
    from tests.conftest import make_bucket

    make_bucket(bucket_url[5:].split("/")[0])
    errors: list[BaseException] = []

    def leaky(kind):  # a library that echoes the secret in its error message
        def make():
            error = kind()
            error.args = (f"{error} (credentials {secret})",)
            return error

        return make

    faulty = FaultyFilesystem(fresh_s3fs(), plan={
        "pipe_file": [leaky(TRANSIENT["SlowDown"]), leaky(PERMANENT["SignatureDoesNotMatch"])],
    })
    store = ArtifactStore(bucket_url, filesystem=faulty, retry=policy(Sleeps()))
    with pytest.raises(StoreError) as raised:
        store.put(KEY, PARTS, step="faults")
    errors.append(raised.value)
    store = ArtifactStore(bucket_url, cache_dir=tmp_path / "cache")
    ref = store.put(KEY, PARTS, step="faults")
    store._backend.write(f"artifacts/{KEY}/{store.inspect(KEY).part_path('info')}", b"tampered")
    with pytest.raises(CorruptArtifactError) as raised:
        store.get(ref).load()
    errors.append(raised.value)
    for url in (f"s3://key:{secret}@bucket/x", "s3://tint-missing-bucket/x"):
        with pytest.raises((ValueError, StoreError)) as raised:
            ArtifactStore(url)
        errors.append(raised.value)

    texts = [record.getMessage() for record in caplog.records]
    texts += ["".join(traceback.format_exception(error)) for error in errors]
    texts += [repr(store), ref.model_dump_json()]
    assert any("transient" in text for text in texts) and any("quarantined" in text for text in texts)
    assert len(caplog.records) > 10, "library debug logs were captured too"
    leaks = [text for text in texts if secret in text]
    assert leaks == []
