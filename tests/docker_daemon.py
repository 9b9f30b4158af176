"""A throw-away Docker daemon for the worker-image tests: ``dockerd`` with no bridge network and no iptables rules
(containers run on the host's network only, so all they reach is on 127.0.0.1), its data, state and socket in a
temporary folder, stopped and deleted afterwards. And the base image with Python that ``tests/debian_base.py`` makes
from Debian's packages, imported into it."""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

import docker
from tests.debian_base import DockerUnavailable, debian_rootfs_tarball

DEBIAN_BASE = "tint-test/debian-python:bookworm"


# The daemon and the builds and containers it starts yield the cores and the disk to the rest of the suite, which
# runs beside it: a 6.6 GiB image build at normal priority made the main job's embedded server miss its start.
_LOW_PRIORITY = ["nice", "-n", "10", *(["ionice", "-c2", "-n7"] if shutil.which("ionice") else [])]


@dataclass(frozen=True)
class Dockerd:
    """A running daemon: its API address (for DOCKER_HOST) and a client on it."""

    host: str
    client: docker.DockerClient
    log: Path


def _client_when_ready(host: str, process: subprocess.Popen, log: Path, timeout: float = 60.0) -> docker.DockerClient:
    """A client of the daemon at ``host`` once it answers (making one asks the daemon for its API version)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DockerUnavailable(f"dockerd exited with {process.returncode}: {log.read_text()[-1500:]}")
        try:
            client = docker.DockerClient(base_url=host, timeout=600)
            client.ping()
            return client
        except (docker.errors.DockerException, requests.exceptions.ConnectionError):
            time.sleep(0.3)
    raise DockerUnavailable(f"dockerd not ready within {timeout:.0f} s: {log.read_text()[-1500:]}")


@contextmanager
def throwaway_dockerd() -> Iterator[Dockerd]:
    """Start a private daemon as root and yield it; remove its containers, stop it and delete its folder after."""
    if os.geteuid() != 0:
        raise DockerUnavailable("starting dockerd needs root")
    if shutil.which("dockerd") is None:
        raise DockerUnavailable("dockerd is not installed (Debian: apt-get install docker.io)")
    # Short path: the daemon's unix sockets must stay under the 108-byte limit.
    folder = Path(tempfile.mkdtemp(prefix="tint-dockerd-", dir="/tmp"))
    host, log = f"unix://{folder}/docker.sock", folder / "dockerd.log"
    process = None
    try:
        with open(log, "wb") as output:
            process = subprocess.Popen([*_LOW_PRIORITY, "dockerd", "--bridge=none", "--iptables=false",
                                        "--ip6tables=false", "--data-root", str(folder / "data"), "--exec-root",
                                        str(folder / "exec"), "--pidfile", str(folder / "docker.pid"), "--host", host],
                                       stdout=output, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        client = _client_when_ready(host, process, log)
        yield Dockerd(host=host, client=client, log=log)
        for container in client.containers.list(all=True):
            container.remove(force=True)
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        _unmount_under(folder)  # dockerd leaves its network namespace mounted
        shutil.rmtree(folder, ignore_errors=True)


def _unmount_under(folder: Path) -> None:
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for point in sorted((point for point in mounts if point.startswith(f"{folder}/")), reverse=True):
        subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)


def debian_base_image(daemon: Dockerd) -> tuple[str, float]:
    """Import the Debian base into ``daemon`` as DEBIAN_BASE; returns its tag and the seconds it took (debootstrap
    included when the cache was empty, or the wait for another process making it)."""
    started = time.perf_counter()
    repository, tag = DEBIAN_BASE.split(":")
    daemon.client.api.import_image_from_file(str(debian_rootfs_tarball()), repository=repository, tag=tag,
                                             changes=['CMD ["/bin/bash"]'])  # fmt: skip
    return DEBIAN_BASE, time.perf_counter() - started
