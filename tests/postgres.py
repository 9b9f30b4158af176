"""A throw-away PostgreSQL cluster for a Prefect server, as production runs Prefect: ``initdb`` in a temporary folder,
the server on a loopback port, stopped and deleted afterwards. Used by the cluster tests and by
benchmarks/fan_out_overhead.py."""

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.ports import free_port

SERVICE_USER = "postgres"  # PostgreSQL refuses to run as root: a root test runs it as Debian's service user


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot run on this machine; the message says why and what would fix it."""


@dataclass(frozen=True)
class Postgres:
    """A running throw-away cluster: the SQLAlchemy URL Prefect takes, and its data folder (to look into)."""

    url: str
    data: Path
    port: int
    bin_folder: Path

    def checkpoint(self) -> None:
        """Write every change to the data files, so that what a test reads there is the whole database."""
        subprocess.run([str(self.bin_folder / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "prefect",
                        "-d", "postgres", "-q", "-c", "CHECKPOINT"], check=True, capture_output=True)  # fmt: skip


def _bin_folder() -> Path:
    """Where initdb and postgres are: on PATH, or in Debian's versioned folder (not on PATH there)."""
    if initdb := shutil.which("initdb"):
        return Path(initdb).resolve().parent  # Debian links a few tools onto PATH; the rest sit beside them
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda path: int(Path(path).parts[-3]))
    if not versions:
        raise PostgresUnavailable("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    return Path(versions[-1]).parent


def _as_service_user() -> dict:
    """Popen arguments that drop root to the service user; none for anyone else."""
    if os.geteuid() != 0:
        return {}
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise PostgresUnavailable(f"running as root without a '{SERVICE_USER}' user to run PostgreSQL as (it refuses "
                                  "root)") from None
    return {"user": SERVICE_USER, "group": SERVICE_USER}


def _wait_ready(bin_folder: Path, port: int, process: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"postgres exited with {process.returncode}: {log.read_text()[-2000:]}")
        ready = subprocess.run([str(bin_folder / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)], check=False)
        if ready.returncode == 0:
            return
        time.sleep(0.2)
    raise TimeoutError(f"postgres on port {port} not ready within {timeout:.0f} s: {log.read_text()[-2000:]}")


@contextmanager
def throwaway_postgres(database: str = "prefect") -> Iterator[Postgres]:
    """Start a fresh cluster on 127.0.0.1 with one database (trust authentication: loopback only, nothing to steal)
    and yield it; stop it (fast shutdown, then SIGKILL) and delete its folder on the way out."""
    bin_folder = _bin_folder()
    as_user = _as_service_user()
    # Not pytest's tmp_path: that folder is root-only, and the service user must reach its data and socket.
    folder = Path(tempfile.mkdtemp(prefix="tint-postgres-"))
    if as_user:
        shutil.chown(folder, SERVICE_USER, SERVICE_USER)
    data, log, port = folder / "data", folder / "postgres.log", free_port()
    process = None
    try:
        subprocess.run([str(bin_folder / "initdb"), "-D", str(data), "-U", "prefect", "--auth=trust", "-E", "UTF8",
                        "--no-sync"], check=True, capture_output=True, **as_user)  # fmt: skip
        # Durability settings off: the cluster dies with the test, and fsyncs would only slow the runs down.
        settings = ["fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=200"]
        with open(log, "wb") as output:
            process = subprocess.Popen([str(bin_folder / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p",
                                        str(port), "-k", str(folder), *(f"-c{setting}" for setting in settings)],
                                       stdout=output, stderr=subprocess.STDOUT, start_new_session=True, **as_user)  # fmt: skip
        _wait_ready(bin_folder, port, process, log)
        subprocess.run([str(bin_folder / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "prefect", database],
                       check=True, capture_output=True)  # fmt: skip
        yield Postgres(url=f"postgresql+asyncpg://prefect@127.0.0.1:{port}/{database}", data=data, port=port,
                       bin_folder=bin_folder)
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        shutil.rmtree(folder, ignore_errors=True)
