"""A Debian bookworm root filesystem with Python, made by ``debootstrap`` (no image registry can be reached) as a
tarball, once per machine: the worker-image tests import it as their base image. Standard library only, so that CI
can make it ahead, while its own setup runs (``python3 -m tests.debian_base``); a lock keeps one maker at a time, and
only a finished, renamed tarball is ever reused."""

import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tint-tests"
DEBIAN_PACKAGES = ("python3", "python3-venv", "ca-certificates")


class DockerUnavailable(RuntimeError):
    """Docker (or what its tests build on) cannot run on this machine; the message says why and what would fix it."""


def made_once(path: Path, make: Callable[[Path], None]) -> Path:
    """``path``, made by ``make(partial)`` unless it exists; one maker at a time across processes (a lock beside it,
    the others wait), and only a whole file ever has the name: a maker killed midway leaves none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            partial = path.with_name(f"{path.name}.partial")
            make(partial)
            os.replace(partial, path)
    return path


def _debootstrap(tarball: Path) -> None:
    if shutil.which("debootstrap") is None:
        raise DockerUnavailable("debootstrap is not installed (Debian: apt-get install debootstrap)")
    with tempfile.TemporaryDirectory(dir=tarball.parent) as work:
        root = Path(work) / "root"
        made = subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(DEBIAN_PACKAGES)}",
                               "bookworm", str(root), "http://deb.debian.org/debian"],
                              capture_output=True, text=True, check=False)  # fmt: skip
        if made.returncode != 0:
            raise DockerUnavailable(f"debootstrap failed: {made.stdout[-1500:]}{made.stderr[-1500:]}")
        subprocess.run(["tar", "-C", str(root), "-cf", str(tarball), "."], check=True)


def debian_rootfs_tarball() -> Path:
    """The tarball, made by debootstrap unless a finished one is cached; waits while another process makes it."""
    return made_once(CACHE / f"debian-bookworm-minbase-{'-'.join(DEBIAN_PACKAGES)}.tar", _debootstrap)


if __name__ == "__main__":
    print(debian_rootfs_tarball())
