"""A size-bounded local cache of remote part bytes, addressed by their SHA-256.

Entries are named by content digest, so they never go stale and one cache can serve any number of stores. Every hit
is verified against its digest (a damaged entry is dropped and reported as a miss); entries are written through a
temporary file and ``os.replace``, so concurrent processes sharing the folder only ever see whole entries. When the
total size exceeds the bound, least recently used entries (by modification time, refreshed on every hit) go first.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
import uuid
from pathlib import Path

logger = logging.getLogger("tint_core.store")

DEFAULT_CACHE_DIR = "~/.cache/tint/store-parts"
DEFAULT_CACHE_BYTES = 2 * 2**30
_STALE_TEMPORARY = 3600.0  # seconds after which a temporary file cannot belong to a live insert
_EVICT_TO = 0.9  # evict below the bound, not just to it, so that a full cache does not rescan on every insert


class PartCache:
    """Local LRU cache of part bytes keyed by SHA-256.

    Args:
        directory: cache folder (created on first insert).
        max_bytes: bound on the total size of the entries; parts larger than it are never cached.
    """

    def __init__(self, directory: str | os.PathLike[str] = DEFAULT_CACHE_DIR, max_bytes: int = DEFAULT_CACHE_BYTES):
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.directory = Path(directory).expanduser()
        self.max_bytes = max_bytes
        self._estimate: int | None = None  # this process's running total; rescanned before any eviction

    def __repr__(self) -> str:
        return f"PartCache({str(self.directory)!r}, max_bytes={self.max_bytes})"

    def _entry(self, sha256: str) -> Path:
        return self.directory / sha256[:2] / sha256

    def get(self, sha256: str) -> bytes | None:
        """The cached bytes with this digest, or None (absent or damaged)."""
        path = self._entry(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        if hashlib.sha256(data).hexdigest() != sha256:
            logger.warning("dropping damaged cache entry %s", path)
            path.unlink(missing_ok=True)
            return None
        with contextlib.suppress(FileNotFoundError):  # evicted by another process meanwhile: the bytes are still good
            os.utime(path)  # mark as recently used
        return data

    def put(self, sha256: str, data: bytes) -> None:
        """Insert bytes already verified against ``sha256``; evict old entries if the bound is exceeded."""
        if len(data) > self.max_bytes:
            return
        path = self._entry(sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".tmp-{uuid.uuid4().hex}")
        temporary.write_bytes(data)
        os.replace(temporary, path)
        if self._estimate is None:
            self._estimate = self.size()
        else:
            self._estimate += len(data)
        if self._estimate > self.max_bytes:
            self._evict()

    def _entries(self) -> list[tuple[float, int, Path]]:
        entries = []
        for path in self.directory.glob("??/*"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if not path.name.startswith("."):
                entries.append((stat.st_mtime, stat.st_size, path))
            elif time.time() - stat.st_mtime > _STALE_TEMPORARY:  # left by a killed process
                path.unlink(missing_ok=True)
        return entries

    def size(self) -> int:
        """Total bytes of the entries now in the folder (all processes' inserts included)."""
        return sum(size for _, size, _ in self._entries())

    def _evict(self) -> None:
        entries = sorted(self._entries(), key=lambda entry: entry[0])
        total = sum(size for _, size, _ in entries)
        for _, size, path in entries:
            if total <= self.max_bytes * _EVICT_TO:
                break
            path.unlink(missing_ok=True)
            total -= size
        self._estimate = total

    def clear(self) -> None:
        """Remove every entry."""
        for _, _, path in self._entries():
            path.unlink(missing_ok=True)
        self._estimate = 0
