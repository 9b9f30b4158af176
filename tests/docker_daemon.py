"""A throw-away Docker daemon for the worker-image tests: ``dockerd`` with no bridge network and no iptables rules
(containers run on the host's network only, so all they reach is on 127.0.0.1), its data, state and socket in a
temporary folder, stopped and deleted afterwards. And the base images imported into it: Python from Debian's packages
(``tests/debian_base.py``), and the same with this machine's PyTorch, in the place of the worker image's default base."""

import importlib.metadata
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import docker
from tests.debian_base import DockerUnavailable, debian_rootfs_tarball

DEBIAN_BASE = "tint-test/debian-python:bookworm"
PYTORCH_BASE = "tint-test/debian-pytorch:bookworm"


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


def _installed_closure(names: tuple[str, ...]) -> list[importlib.metadata.Distribution]:
    """The distributions ``names`` are and need, as installed beside this interpreter, the extras they ask of each
    other included (PyTorch's CUDA wheels ask cuda-toolkit for eleven: left out, the image's build fetched and unpacked
    their 680 MB of wheels, measured)."""
    found: dict[str, importlib.metadata.Distribution] = {}
    followed: set[tuple[str, str]] = set()  # (distribution, extra or "")
    pending = [(name, "") for name in names]
    while pending:
        name, extra = pending.pop()
        name = canonicalize_name(name)
        if (name, extra) in followed:
            continue
        followed.add((name, extra))
        if name not in found:
            found[name] = importlib.metadata.distribution(name)
        for spec in found[name].requires or []:
            requirement = Requirement(spec)
            if requirement.marker is None and not extra or requirement.marker and requirement.marker.evaluate(
                    {"extra": extra}):  # fmt: skip
                pending.extend((requirement.name, wanted) for wanted in ("", *requirement.extras))
    return list(found.values())


def _with_bytecode(dist: importlib.metadata.Distribution, path: importlib.metadata.PackagePath) -> Iterator[tuple]:
    """A distribution's installed file (relative path, location) and, for a module, its byte-compiled form where this
    machine has one. PyTorch's image has its modules compiled, as does any image pip installs into; without them,
    every process in a container compiled the whole of the torch it imports again (``PYTHONDONTWRITEBYTECODE``, set
    in the worker image and on these machines, keeps the result from being written), seconds of CPU each. The
    bytecode stays valid in the image: a tar keeps the sources' modification times, which it is checked against."""
    location = Path(dist.locate_file(path))
    yield path, location
    if location.suffix == ".py" and os.path.isfile(compiled := importlib.util.cache_from_source(str(location))):
        yield Path(path).parent / "__pycache__" / Path(compiled).name, Path(compiled)


def _write_rootfs_with(rootfs: Path, distributions: list[importlib.metadata.Distribution], site: str,
                       output: object) -> None:  # fmt: skip
    """A tar stream to ``output``: ``rootfs``'s members, then the installed files of ``distributions`` (as their
    RECORDs list them) and their byte-compiled modules under ``site`` with the folders they need; scripts outside
    site-packages are left out."""
    with tarfile.open(fileobj=output, mode="w|") as stream, tarfile.open(rootfs) as base:
        present = set()
        for member in base:
            stream.addfile(member, base.extractfile(member) if member.isreg() else None)
            present.add(os.path.normpath(member.name))
        files = sorted({(f"{site}/{path}", location) for dist in distributions for recorded in dist.files or []
                        if not str(recorded).startswith("..") for path, location in _with_bytecode(dist, recorded)})  # fmt: skip
        folders = {str(parent) for name, _ in files for parent in Path(name).parents} - present - {"."}
        for folder in sorted(folders):
            entry = tarfile.TarInfo(f"./{folder}")
            entry.type, entry.mode = tarfile.DIRTYPE, 0o755
            stream.addfile(entry)
        for name, location in files:
            if os.path.isfile(location):
                stream.add(location, arcname=f"./{name}", recursive=False)


def pytorch_base_image(daemon: Dockerd, distributions: tuple[str, ...] = ("torch", "torchvision")) -> tuple[str, float]:
    """The Debian base with this interpreter's ``distributions`` and what they need installed system-wide, imported
    into ``daemon`` as PYTORCH_BASE: a stand-in for the worker image's default base (PyTorch's image), made from the
    files this machine installed rather than by pip in a build (gigabytes unpacked and committed once more). Returns
    its tag and the seconds it took."""
    started = time.perf_counter()
    rootfs = debian_rootfs_tarball()
    python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    with tarfile.open(rootfs) as base:
        if f"./usr/bin/{python}" not in base.getnames():
            raise DockerUnavailable(f"the Debian base has no {python}, the Python this machine's PyTorch is built for")
    read_end, write_end = os.pipe()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with open(write_end, "wb", buffering=1 << 20) as output:
                _write_rootfs_with(rootfs, _installed_closure(distributions), f"usr/local/lib/{python}/dist-packages",
                                   output)  # fmt: skip
        except BaseException as error:  # noqa: BLE001  (reported by the caller, whose import then fails)
            errors.append(error)

    source = open(read_end, "rb")  # noqa: SIM115  (closed below, whatever the import did)

    def chunks() -> Iterator[bytes]:
        while chunk := source.read(1 << 20):
            yield chunk

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    repository, tag = PYTORCH_BASE.split(":")
    try:
        daemon.client.api.import_image(src=chunks(), repository=repository, tag=tag, changes=['CMD ["/bin/bash"]'],
                                       stream_src=True)  # fmt: skip
    finally:
        source.close()  # a writer the daemon stopped reading from fails on the pipe, rather than blocking
        writer.join()
    if errors:
        raise RuntimeError(f"the PyTorch base's files could not be streamed: {errors[0]!r}") from errors[0]
    return PYTORCH_BASE, time.perf_counter() - started
