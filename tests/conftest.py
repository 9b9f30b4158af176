"""Fixtures for every test: S3 on moto's threaded server at 127.0.0.1 (the s3fs test-suite way)."""

from __future__ import annotations

import functools
import os
import uuid

import pytest

# Fake credentials: moto accepts any. Tests that plant a secret use their own value on top of these.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing-access-key",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
}


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
