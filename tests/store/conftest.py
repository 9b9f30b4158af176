"""Fixtures for the artifact store: a moto S3 server on 127.0.0.1 (the s3fs test-suite way) and stores on it."""

from __future__ import annotations

import functools
import multiprocessing
import multiprocessing.forkserver
import os
import uuid
from pathlib import Path

import pytest

# Fake credentials: moto accepts any. Tests that plant a secret use their own value on top of these.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing-access-key",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
}

_summary: list[str] = []


@pytest.fixture(scope="session")
def s3_env():
    """Start moto's threaded server on a free port; point the AWS environment at it for the whole session.

    Returns the environment a child process needs to reach the same server.
    """
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {**S3_ENV, "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
            patch.delenv(name, raising=False)
        yield env
    server.stop()


@functools.cache
def _s3_client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint)


def make_bucket(name: str) -> None:
    _s3_client(os.environ["AWS_ENDPOINT_URL"]).create_bucket(Bucket=name)


@pytest.fixture
def s3_url(s3_env) -> str:
    """URL of an empty store in a fresh bucket (buckets are never shared between tests)."""
    bucket = f"tint-test-{uuid.uuid4().hex[:12]}"
    make_bucket(bucket)
    return f"s3://{bucket}/store"


@pytest.fixture(params=["local", "s3"])
def store_url(request, tmp_path) -> str:
    """An empty store, once as a local folder and once on S3."""
    if request.param == "local":
        return str(tmp_path / "store")
    return request.getfixturevalue("s3_url")


@pytest.fixture
def store(store_url, tmp_path):
    from tint_core.store import ArtifactStore, RetryPolicy

    return ArtifactStore(store_url, cache_dir=tmp_path / "cache", retry=RetryPolicy(base_delay=0.01))


@pytest.fixture(scope="session")
def writer_context():
    """A forkserver that has imported torch and the store once, so each crash-test writer starts in milliseconds."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["crash_writer", "s3fs"])
    here = Path(__file__).parent
    # The forkserver finds modules through its environment only (it does not inherit this process's sys.path).
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join([str(here), str(here.parents[1]), os.environ.get("PYTHONPATH", "")]))
        multiprocessing.forkserver.ensure_running()
    return context


@pytest.fixture(scope="session")
def summary():
    """Lines to print in pytest's terminal summary (crash-trial counts and the like)."""
    return _summary


def pytest_terminal_summary(terminalreporter):
    if _summary:
        terminalreporter.section("artifact store")
        for line in _summary:
            terminalreporter.write_line(line)

