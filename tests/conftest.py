"""Fixtures for every test: S3 served by moto at 127.0.0.1 in a thread (the s3fs test-suite way), the bundled digits
and backbones pre-trained on their base classes."""

from __future__ import annotations

import base64
import functools
import os
import shutil
import sys
import tempfile
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

# One torch thread in every process the tests start (servers, workers, flow runs, main jobs), set before torch loads:
# on two cores, several processes each with a thread per core spin against each other. Measured: three processes of
# 80 textual-inversion steps on the tiny backbone took 6 s each with one thread, 50–120 s with two. The tests' own
# process computes with one thread as well (tests/pipeline/helpers.py), so digests agree across them.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no "database is locked" telemetry noise
os.environ.setdefault("PREFECT_UI_ENABLED", "false")  # no browser opens the harness's UI; serving it costs ~5 s of CPU

from tests.figures import FIGURES
from tint_core.data import FewShotDataset, write_digits_dataset
from tint_core.fewshot import digits_recipe as recipe

# Fake credentials: moto accepts any. Tests that plant a secret use their own value on top of these.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing-access-key",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_env():
    """Serve moto's S3 on a free port of 127.0.0.1, in a thread; point the AWS environment at it for the whole session.

    Returns the environment a child process needs to reach the same server.
    """
    from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    class QuietHandler(MotoRequestHandler):
        def log_request(self, *args) -> None:
            """No line per request: it went through the root logger to Prefect's rich console handler (measured: a
            sixth of the CPU moto spent serving a cluster test)."""

    # moto's S3 app itself, not its ThreadedMotoServer: that server's dispatcher finds the service of every request
    # by listing moto's package folder and trying each service's URL patterns, under one lock (measured: another
    # quarter of moto's CPU, and every request of every process waited on that lock).
    server = make_server("127.0.0.1", 0, create_backend_app("s3"), threaded=True, request_handler=QuietHandler)
    serving = threading.Thread(target=server.serve_forever, name="moto-s3", daemon=True)
    serving.start()
    env = {**S3_ENV, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.server_port}"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
            patch.delenv(name, raising=False)
        yield env
    server.shutdown()
    serving.join()



@pytest.fixture(autouse=True)
def _forget_s3_filesystems():
    """After every test (and after its monkeypatch has put the environment back): s3fs keeps a filesystem per process,
    thread and arguments, its client bound to the endpoint AWS_ENDPOINT_URL named when it first connected. A test that
    pointed it at a proxy of its own (the flaky-S3 and request-counting tests) must not leave a later test of this
    process one that talks to the closed proxy (seen: "Could not connect to the endpoint URL" in the next S3 test)."""
    yield
    if "s3fs" in sys.modules:
        sys.modules["s3fs"].S3FileSystem.clear_instance_cache()

# The session's server serves the flow runs the tests start and nothing else: no schedule, no deployment, no automation,
# and no test reads its event feed. Its services for those only cost CPU (measured: an idle server's 3.2% of a core
# fell to 1.9% without the periodic ones; a cached 44-task run cost it 4.9 CPU-s with the event persister, 3.7 without;
# the suite runs hundreds of runs on it). The task-run recorder, which writes what the tests read, stays on.
SESSION_SERVER_SERVICES_OFF = {
    f"PREFECT_SERVER_SERVICES_{service}_ENABLED": "false"
    for service in ("EVENT_PERSISTER", "TRIGGERS", "SCHEDULER", "LATE_RUNS", "PAUSE_EXPIRATIONS", "CANCELLATION_CLEANUP",
                    "FOREMAN", "REPOSSESSOR", "CLEANUP_RECONCILER")
}  # fmt: skip


def _folder_with_amigrated_database() -> str:
    """A new temporary folder holding the harness's database (its file name), already migrated, so that the harness's
    server does not migrate a new one (measured: a session of one test on the harness, 16 CPU-s instead of 22-26)."""
    from tests.pipeline.helpers import migrated_database

    folder = tempfile.mkdtemp(prefix="prefect-harness-")
    shutil.copyfile(migrated_database(), Path(folder) / "prefect-test.db")
    return folder


@pytest.fixture(scope="session")
def prefect_server():
    """Prefect's test harness: a real API server on a temporary sqlite database, for the whole session.

    The flows a test runs in its own process run on it. Run on another server (a cluster's) instead, they would
    leave this process's events worker, which Prefect keeps one of per process, sending to that server for the rest
    of the session (seen: every later run here waited in vain for its task runs to be recorded)."""
    from prefect.testing import utilities

    with pytest.MonkeyPatch.context() as patch:
        for name, value in SESSION_SERVER_SERVICES_OFF.items():
            patch.setenv(name, value)  # read by the harness's server process as it starts
        patch.setattr(utilities, "mkdtemp", _folder_with_amigrated_database)  # where the harness puts its database
        with utilities.prefect_test_harness(server_startup_timeout=60):
            yield


@functools.cache
def _s3_client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint)


def make_bucket(name: str) -> None:
    _s3_client(os.environ["AWS_ENDPOINT_URL"]).create_bucket(Bucket=name)


def read_bucket(url: str, skip: str | None = None) -> dict[str, bytes]:
    """Every object under an s3:// URL (bucket and prefix), key → bytes; keys containing ``skip`` left out."""
    bucket, _, prefix = url[len("s3://") :].partition("/")
    client = _s3_client(os.environ["AWS_ENDPOINT_URL"])
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = [item["Key"] for page in pages for item in page.get("Contents", []) if not (skip and skip in item["Key"])]
    with ThreadPoolExecutor(8) as pool:  # thousands of small objects: one request each
        bodies = pool.map(lambda key: client.get_object(Bucket=bucket, Key=key)["Body"].read(), keys)
        return dict(zip(keys, bodies, strict=True))


def secret_leaks(secret: str, outputs: dict[str, bytes]) -> list[str]:
    """The outputs (name → bytes) that hold ``secret`` in any form a log or a database might keep it in."""
    forms = [secret.encode(), secret.encode("utf-16-le"), base64.b64encode(secret.encode())]
    return [name for name, data in outputs.items() if any(form in data for form in forms)]


def files_under(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``, path → bytes."""
    return {str(path): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


@pytest.fixture
def s3_url(s3_env) -> str:
    """URL of an empty store in a fresh bucket (buckets are never shared between tests)."""
    bucket = f"tint-test-{uuid.uuid4().hex[:12]}"
    make_bucket(bucket)
    return f"s3://{bucket}/store"


@pytest.fixture(scope="session")
def digits(tmp_path_factory) -> FewShotDataset:
    """The bundled digits as an ImageFolder tree of 16×16 PNGs (base 0–4, novel 5–9)."""
    return write_digits_dataset(str(tmp_path_factory.mktemp("digits")), size=16)


@dataclass
class Backbones:
    teacher: Path
    student: Path


@pytest.fixture(scope="session")
def digits_backbones(digits, tmp_path_factory) -> Backbones:
    """Teacher and student backbones pre-trained briefly on base digits 0–4 only (tens of seconds)."""
    folder = tmp_path_factory.mktemp("backbones")
    teacher, student = folder / "teacher.safetensors", folder / "student.safetensors"
    recipe.pretrain_backbone(digits, recipe.teacher_backbone(), recipe.teacher_pretrain(epochs=3), teacher)
    recipe.pretrain_backbone(digits, recipe.student_backbone(), recipe.student_pretrain(epochs=4), student)
    return Backbones(teacher, student)


def pytest_sessionfinish(session):
    """In a pytest-xdist worker: hand this process's figures to the controller."""
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["figures"] = dict(FIGURES)


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: absent when the tests run in one process
def pytest_testnodedown(node, error):
    """In the pytest-xdist controller: gather a finished worker's figures."""
    for section, lines in getattr(node, "workeroutput", {}).get("figures", {}).items():
        FIGURES[section].extend(lines)


def pytest_terminal_summary(terminalreporter):
    for section, lines in FIGURES.items():
        if lines:
            terminalreporter.section(section)
            for line in lines:
                terminalreporter.write_line(line)


# The longest test files first, in this order; the rest keep theirs. pytest-xdist hands files to its workers in
# collection order (the Makefile turns off its own reordering, which puts the files with the most tests first and so
# left the image build and the killed-main-job trials, few tests each, running alone at the end): longest first, two
# workers finish close together. (A worker is handed its next file when two tests of its current one are left: the
# image's file, two tests, brings the UI's along.) Measured on 2 busy cores, in minutes.
LONGEST_FIRST = (
    "tests/deployments/test_work_pools.py",  # 18: a cluster on PostgreSQL; workers and its server killed mid-run
    "tests/deployments/test_docker_pool.py",  # 15: the worker image built; compose up; units in containers
    "tests/pipeline/test_soak.py",  # 9: 120 runs
    "tests/deployments/test_prefect_ui.py",  # 8: a cluster; two runs from the UI's form
    "tests/pipeline/test_main_job.py",  # 6
    "tests/pipeline/test_killed_main_job.py",  # 6: five seeded kills of the main job, each rerun
    "tests/pipeline/test_stopping.py",  # 6
    "tests/pipeline/test_benchmark_caching.py",  # 5
    # Then the files of two minutes or more: left in collection order, the report's came last and ran alone on one
    # worker for its last 100 s (measured, 2026-12-03) while the other had finished; the small files fill that tail.
    "tests/pipeline/test_report.py",  # 2.5
    "tests/diffusion/test_digits_weights.py",  # 2.3
    "tests/pipeline/test_flows.py",  # 2.1
    "tests/pipeline/test_full_disk.py",  # 2
    "tests/pipeline/test_concurrency.py",  # 2
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: index for index, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # stable: a file keeps its order
