"""A Debian bookworm root filesystem with Python, made by ``debootstrap`` (no image registry can be reached) as a
tarball, once per machine: the worker-image tests import it as their base image. Standard library only, so that CI
can make it ahead, while its own setup runs (``python3 -m tests.debian_base``); a lock keeps one maker at a time, and
only a finished, renamed tarball is ever reused."""

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tint-tests"
DEBIAN_PACKAGES = ("python3", "python3-venv", "ca-certificates")


class DockerUnavailable(RuntimeError):
    """Docker (or what its tests build on) cannot run on this machine; the message says why and what would fix it."""


def debian_rootfs_tarball() -> Path:
    """The tarball, made by debootstrap unless a finished one is cached; waits while another process makes it."""
    tarball = CACHE / f"debian-bookworm-minbase-{'-'.join(DEBIAN_PACKAGES)}.tar"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "debian-base.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tarball.exists():
            return tarball
        if shutil.which("debootstrap") is None:
            raise DockerUnavailable("debootstrap is not installed (Debian: apt-get install debootstrap)")
        with tempfile.TemporaryDirectory(dir=CACHE) as work:
            root = Path(work) / "root"
            made = subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(DEBIAN_PACKAGES)}",
                                   "bookworm", str(root), "http://deb.debian.org/debian"],
                                  capture_output=True, text=True, check=False)  # fmt: skip
            if made.returncode != 0:
                raise DockerUnavailable(f"debootstrap failed: {made.stdout[-1500:]}{made.stderr[-1500:]}")
            partial = Path(work) / "root.tar"
            subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True)
            os.replace(partial, tarball)  # only a whole tarball ever has the cached name
    return tarball


if __name__ == "__main__":
    print(debian_rootfs_tarball())
