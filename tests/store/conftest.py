"""Fixtures for the artifact store: empty stores, local and on S3 (tests/conftest.py runs the S3 server)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
from pathlib import Path

import pytest

from tests.figures import FIGURES

_summary: list[str] = FIGURES["artifact store"]


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
