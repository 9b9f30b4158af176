"""A real Prefect server on 127.0.0.1 (sqlite, temporary PREFECT_HOME), set up with deployments/setup.sh, and process
workers started as a user starts them; S3 on moto's threaded server."""

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import make_bucket

REPO = Path(__file__).parents[2]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
    secret: str  # the AWS secret key every process of the cluster holds: it must appear in none of their outputs
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)

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
def cluster(s3_env, tmp_path_factory) -> Iterator[Cluster]:
    """Server, pools (tint-cpu, tint-gpu with room for 2 units at once), automation and deployments, as
    ``deployments/setup.sh`` makes them, with a store in a moto bucket; then one CPU and two GPU-pool workers."""
    home = tmp_path_factory.mktemp("prefect-home")
    logs = tmp_path_factory.mktemp("logs")
    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    bucket = f"tint-cluster-{port}"
    make_bucket(bucket)
    env = {name: value for name, value in os.environ.items() if not name.startswith("PREFECT_")}
    env |= {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "1",  # workers poll every second, not every 10
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "TINT_STORE": f"s3://{bucket}/tint",
        "GPUS": "2",
        "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(24),  # moto accepts any: planted, to be looked for
        "PREFECT_API_LOG_RETRYABLE_ERRORS": "true",  # the cause of a 503 (sqlite busy, …) in the server's log
    }
    server_log = open(logs / "server.log", "w")  # noqa: SIM115
    server = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    cluster = Cluster(api_url=api_url, env=env, store=env["TINT_STORE"], logs=logs, home=home,
                      secret=env["AWS_SECRET_ACCESS_KEY"])  # fmt: skip
    try:
        _wait_healthy(api_url, server)
        setup = subprocess.run(["bash", "deployments/setup.sh"], cwd=REPO, env=env, capture_output=True, text=True,
                               timeout=300, check=False)  # fmt: skip
        assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
        cluster.start_worker("tint-cpu", "cpu-a")
        cluster.start_worker("tint-gpu", "gpu-a")
        cluster.start_worker("tint-gpu", "gpu-b")
        yield cluster
    finally:
        _stop(*cluster.workers.values())
        _stop(server)
