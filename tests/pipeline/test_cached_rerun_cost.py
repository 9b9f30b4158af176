"""A cached rerun on S3 costs requests, not downloads: the reuse check reads each artifact's manifest and asks S3 for
each part's size and SHA-256 (a HEAD), where the full check (``TINT_REUSE_CHECK=full``) downloads every part on a
machine whose read cache does not hold it. Requests are counted by a proxy on 127.0.0.1 in front of moto."""

import uuid
from collections import Counter

import pytest

from flows.benchmark import benchmark
from tests.conftest import make_bucket
from tests.pipeline.helpers import run_flow, small_config, timings
from tests.store.faulty_endpoint import FaultyEndpoint
from tint_core.pipeline.resources import open_store

pytestmark = pytest.mark.slow


def test_a_cached_rerun_on_s3_heads_the_parts_it_reuses_instead_of_downloading_them(prefect_server, s3_env,
                                                                                    monkeypatch):  # fmt: skip
    bucket = f"tint-rerun-{uuid.uuid4().hex[:12]}"
    make_bucket(bucket)
    config = small_config(f"s3://{bucket}/store", methods=["supports_only", "tint"])
    measured = {}
    with FaultyEndpoint(s3_env["AWS_ENDPOINT_URL"], rate=0.0, seed=0, slow_seconds=0.0) as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint.url)
        run_flow(benchmark, config=config)
        for check in ("full", "stored"):
            monkeypatch.setenv("TINT_REUSE_CHECK", check)
            open_store(config.store).cache.clear()  # a machine that has not read this store yet
            endpoint.reset_counts()
            run = run_flow(benchmark, config=config, label=f"cached rerun on S3, {check} reuse check")
            assert run.all_cached
            parts = Counter()
            for (method, path), count in endpoint.paths.items():
                if "/artifacts/" in path and not path.endswith("/manifest.json"):
                    parts[method] += count
            measured[check] = dict(endpoint.answered), parts, endpoint.answered_bytes["GET"]
    (full, full_parts, full_bytes), (stored, stored_parts, stored_bytes) = measured["full"], measured["stored"]
    assert full_parts["GET"] > 20 and full_parts["HEAD"] == 0  # every reused part downloaded…
    # …where the stored check asks S3 about each instead, and downloads only what the run reads to use (its report's
    # results and scores: those the full check had just put in the read cache).
    assert stored_parts["HEAD"] >= full_parts["GET"] and stored_parts["GET"] * 2 < full_parts["GET"]
    assert stored_bytes * 3 < full_bytes, (stored_bytes, full_bytes)
    timings.append(f"cached rerun on S3: full check {sum(full.values())} requests {full}, {full_bytes / 2**20:.2f} "
                   f"MiB read ({full_parts['GET']} parts downloaded); stored check {sum(stored.values())} requests "
                   f"{stored}, {stored_bytes / 2**20:.2f} MiB read ({stored_parts['HEAD']} parts asked about)")  # fmt: skip
