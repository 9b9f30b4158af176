"""A whole benchmark against an S3 that misbehaves on a fraction of its requests (503 SlowDown, 500 InternalError,
connection resets, answers later than the client's timeout): the run completes with a clean run's artifacts, digest
for digest; every retry is logged; nothing partial is visible."""

import logging
import uuid

import fsspec.config
import pytest

from flows.benchmark import benchmark
from tests.conftest import make_bucket
from tests.pipeline.helpers import content_digests, run_flow, timings, undisturbed_run
from tests.store.faulty_endpoint import FAULTS, FaultyEndpoint
from tint_core.store import ArtifactStore

pytestmark = pytest.mark.slow

RATE, SEED = 0.03, 7  # 3% of requests
TIMEOUT, SLOW = 2.0, 4.0  # the clients' read timeout, and how late a slow answer comes


def test_a_benchmark_on_a_flaky_s3_completes_with_the_clean_artifacts_and_logs_its_retries(prefect_server, s3_env,
                                                                                           monkeypatch, caplog,
                                                                                           tmp_path_factory):  # fmt: skip
    clean = undisturbed_run(tmp_path_factory)  # the reference: a local store holds the same content as a bucket
    bucket = f"tint-flaky-{uuid.uuid4().hex[:12]}"
    make_bucket(bucket)
    flaky = clean.config.updated(store=f"s3://{bucket}/store")
    caplog.set_level(logging.WARNING, logger="tint_core.store")
    with FaultyEndpoint(s3_env["AWS_ENDPOINT_URL"], rate=RATE, seed=SEED, slow_seconds=SLOW) as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint.url)
        monkeypatch.setenv("TINT_S3_READ_TIMEOUT", str(TIMEOUT))  # the store's clients
        # Everything else that reaches S3 through fsspec (the digits' folder, Prefect's cache records) keeps
        # botocore's own retries; give its clients the same short timeout.
        monkeypatch.setitem(fsspec.config.conf, "s3", {"config_kwargs": {"read_timeout": TIMEOUT}})
        run = run_flow(benchmark, config=flaky, label="on a flaky S3")
    retried = [record.getMessage() for record in caplog.records if "transient" in record.getMessage()]
    injected = sum(endpoint.faults.values())
    assert set(endpoint.faults) == set(FAULTS) and injected >= 20, endpoint.faults
    assert retried and not run.all_cached
    assert content_digests(flaky.store) == clean.digests
    store = ArtifactStore(flaky.store)
    keys = [manifest.key for manifest in store.list()]
    assert store.verify(keys).valid == keys  # nothing partial or corrupt is visible
    timings.append(f"flaky S3: {injected} faults in {endpoint.requests} requests ({dict(endpoint.faults)}), "
                   f"{len(retried)} retries logged by the store, the clean run's digests")  # fmt: skip
