"""A real Prefect server on 127.0.0.1 on PostgreSQL (a throw-away cluster, as production runs it; temporary
PREFECT_HOME), set up with deployments/setup.sh, and process workers started as a user starts them; S3 on moto's
threaded server."""

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import make_bucket
from tests.ports import free_port
from tests.postgres import Postgres, PostgresUnavailable, throwaway_postgres

REPO = Path(__file__).parents[2]
BIN = Path(sys.executable).parent


def _wait_healthy(url: str, process: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prefect server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"prefect server at {url} not healthy within {timeout:.0f} s")


def _stop(*processes: subprocess.Popen) -> None:
    """Stop processes started in their own sessions, with everything they started: all asked at once, then each
    given up to 15 s before it is killed."""
    running = [(process, os.getpgid(process.pid)) for process in processes if process.poll() is None]
    for _, group in running:
        os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for process, group in running:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            process.wait()


@dataclass
class Cluster:
    """A Prefect server with the tint pools and deployments, its workers, and the store they share."""

    api_url: str
    env: dict[str, str]
    store: str
    logs: Path
    home: Path
    database: Postgres
    secret: str  # the AWS secret key every process of the cluster holds: it must appear in none of their outputs
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)
    server: subprocess.Popen | None = None

    def start_server(self) -> None:
        """``prefect server start`` on the cluster's port and database (its log appended to), once healthy."""
        port = self.api_url.rsplit(":", 1)[1].split("/")[0]
        log = open(self.logs / "server.log", "a")  # noqa: SIM115  (the server writes until it stops)
        self.server = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", port],
                                       env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        _wait_healthy(self.api_url, self.server)

    def kill_server(self) -> None:
        """SIGKILL the server and everything it started, as a lost machine would end it."""
        os.killpg(os.getpgid(self.server.pid), signal.SIGKILL)
        self.server.wait()

    def start_worker(self, pool: str, name: str) -> subprocess.Popen:
        """``prefect worker start`` (one flow run at a time), in its own session so that a test can kill it whole."""
        log = open(self.logs / f"worker-{name}.log", "w")  # noqa: SIM115  (the worker writes until it stops)
        process = subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", pool, "--name", name,
                                    "--limit", "1"], cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
        self.workers[name] = process
        return process

    def worker_log(self, name: str) -> str:
        return (self.logs / f"worker-{name}.log").read_text()


@pytest.fixture(scope="module")
def database() -> Iterator[Postgres]:
    """The cluster's PostgreSQL, started before its server and stopped after it."""
    try:
        with throwaway_postgres() as started:
            yield started
    except PostgresUnavailable as reason:
        pytest.skip(f"the cluster's Prefect server runs on PostgreSQL: {reason}")


@contextmanager
def running_cluster(database: Postgres, tmp_path_factory) -> Iterator[Cluster]:
    """Server on PostgreSQL, pools (tint-cpu, tint-gpu of type process with room for 2 units at once),
    automation and deployments, as ``deployments/setup.sh`` makes them, with a store in a moto bucket (the caller holds
    ``s3_env``); the caller starts the workers, which are stopped with the server."""
    home = tmp_path_factory.mktemp("prefect-home")
    logs = tmp_path_factory.mktemp("logs")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    bucket = f"tint-cluster-{port}"
    make_bucket(bucket)
    cluster_env = {name: value for name, value in os.environ.items() if not name.startswith("PREFECT_")}
    cluster_env |= {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # Workers poll every 4 s, not every 10 (a unit waits less to be picked up) nor faster: every second, three
        # workers kept an idle server at 19% of a core (2 s: 10%; 10 s: 6%), and the cores are shared with the rest of
        # the suite, which is bound by them; a unit waiting 1 s longer on average costs none.
        "PREFECT_WORKER_QUERY_SECONDS": "4",
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "TINT_STORE": f"s3://{bucket}/tint",
        "GPUS": "2",
        "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(24),  # moto accepts any: planted, to be looked for
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": database.url,
        "PREFECT_API_LOG_RETRYABLE_ERRORS": "true",  # the cause of a 503 (a database error) in the server's log
    }
    cluster = Cluster(api_url=api_url, env=cluster_env, store=cluster_env["TINT_STORE"], logs=logs, home=home,
                      database=database, secret=cluster_env["AWS_SECRET_ACCESS_KEY"])  # fmt: skip
    try:
        cluster.start_server()
        setup = subprocess.run(["bash", "deployments/setup.sh", "process"], cwd=REPO, env=cluster_env,
                               capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
        assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
        yield cluster
    finally:
        _stop(*cluster.workers.values())
        if cluster.server is not None:
            _stop(cluster.server)


@pytest.fixture(scope="module")
def cluster(s3_env, database, tmp_path_factory) -> Iterator[Cluster]:
    """The cluster with process pools: one CPU and two GPU-pool workers."""
    with running_cluster(database, tmp_path_factory) as started:
        started.start_worker("tint-cpu", "cpu-a")
        started.start_worker("tint-gpu", "gpu-a")
        started.start_worker("tint-gpu", "gpu-b")
        yield started
