"""Byte-level storage under a store root: a local folder through ``os``, or any fsspec filesystem (S3 through s3fs).

Both give the store the same two guarantees it builds on:

- ``write`` of a file in a folder no reader looks at (a private writer folder) — a crash may leave it partial;
- ``create_exclusive`` of a small file that appears whole or not at all, and only if it does not exist yet: local
  through a fsynced temporary file hard-linked into place, S3 through one ``PutObject`` with ``If-None-Match: *``.

Every call maps failures to the store's errors: ``FileNotFoundError`` stays (it means "absent"), transient errors are
retried (remote only), anything else becomes ``StoreAccessError`` naming the store's display URL.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
import shutil
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from tint_core.store.errors import (
    OUT_OF_SPACE,
    StoreAccessError,
    StoreError,
    StoreRetryError,
    describe,
    out_of_space,
    redact,
)
from tint_core.store.keys import normalize_path
from tint_core.store.retry import RetryPolicy, s3_error_code

T = TypeVar("T")

# Timeouts bound how long an unreachable endpoint can hold a call; retries happen in RetryPolicy only, so that s3fs's
# and botocore's own retry loops do not multiply the attempts.
S3_OPTIONS: dict[str, Any] = {
    "use_listings_cache": False,  # other processes write to the store: a cached listing would hide their artifacts
    "skip_instance_cache": True,  # _filesystem caches per AWS environment instead
    "config_kwargs": {"connect_timeout": 5, "read_timeout": 60, "retries": {"total_max_attempts": 1}},
}
READ_TIMEOUT_VARIABLE = "TINT_S3_READ_TIMEOUT"  # seconds, instead of the 60 above: an answer later than this is retried
# Up to this size a file goes to S3 in one PUT, which can carry a SHA-256 of the whole object (S3's own limit is 5 GiB;
# a multipart upload has only a checksum of checksums, which no manifest could be compared with).
SINGLE_PUT_BYTES = 5 * 2**30


@dataclasses.dataclass(frozen=True)
class StoredFile:
    """What the storage says of a file without reading it: its size, and the SHA-256 of its bytes (hex) that the
    storage itself computed and checked when they were written — None where it keeps none."""

    size: int
    sha256: str | None


@dataclasses.dataclass(frozen=True)
class FileInfo:
    """A file under the root: POSIX path relative to the root, size in bytes, modification time (epoch seconds)."""

    path: str
    size: int
    mtime: float


class Backend(ABC):
    """Files under one root, addressed by POSIX paths relative to it."""

    url: str
    remote: bool
    retry: RetryPolicy
    concurrency = 1  # parallel calls in read_many/write_many: pays off where each call waits on the network

    def _call(self, what: str, path: str, function: Callable[[], T], retry: RetryPolicy | None = None) -> T:
        """Run one storage call with retries and error mapping (see the module docstring)."""
        where = f"{what} {path or '/'} in store {self.url}"
        try:
            return (retry or self.retry).call(where, function)
        except (FileNotFoundError, FileExistsError) as error:
            if s3_error_code(error) == "NoSuchBucket":
                raise StoreAccessError(f"the bucket of store {self.url} does not exist") from None
            raise type(error)(redact(f"{where}: {error}")) from None
        except StoreError:
            raise
        except OSError as error:
            if error.errno in OUT_OF_SPACE:
                raise out_of_space(self.url, f"{what} {path or '/'}") from None
            raise StoreAccessError(f"{where} failed: {describe(error)}") from None
        except Exception as error:
            raise StoreAccessError(f"{where} failed: {describe(error)}") from None

    @abstractmethod
    def read(self, path: str, size: int | None = None) -> bytes:
        """The file's bytes (``size``: the expected size, if known); FileNotFoundError when absent."""

    def read_many(self, paths: Mapping[str, int | None]) -> dict[str, bytes | None]:
        """Bytes of several files given as ``{path: expected size or None}`` (None for absent files)."""

        def read_or_none(path: str) -> bytes | None:
            try:
                return self.read(path, paths[path])
            except FileNotFoundError:
                return None

        return dict(zip(paths, self._map(read_or_none, list(paths)), strict=True))

    @abstractmethod
    def stat(self, path: str) -> StoredFile:
        """Size (and stored SHA-256, where kept) of a file, without reading it; FileNotFoundError when absent."""

    def stat_many(self, paths: list[str]) -> dict[str, StoredFile | None]:
        """``stat`` of several files (None for absent ones)."""

        def stat_or_none(path: str) -> StoredFile | None:
            try:
                return self.stat(path)
            except FileNotFoundError:
                return None

        return dict(zip(paths, self._map(stat_or_none, paths), strict=True))

    @abstractmethod
    def write(self, path: str, data: bytes) -> None:
        """Create or overwrite a file in a private folder (not atomic)."""

    def write_many(self, files: Mapping[str, bytes]) -> None:
        """``write`` several files."""
        self._map(lambda path: self.write(path, files[path]), list(files))

    def _map(self, function: Callable[[str], T], paths: list[str]) -> list[T]:
        if self.concurrency <= 1 or len(paths) <= 1:
            return [function(path) for path in paths]
        with ThreadPoolExecutor(min(self.concurrency, len(paths))) as pool:
            return list(pool.map(function, paths))

    @abstractmethod
    def create_exclusive(self, path: str, data: bytes) -> bool:
        """Atomically create a file that does not exist yet; False (and nothing written) when it exists."""

    @abstractmethod
    def exists(self, path: str) -> bool:
        """Whether a file exists."""

    @abstractmethod
    def list_dir(self, path: str) -> list[str]:
        """Names of the entries directly under a folder ([] when it does not exist)."""

    @abstractmethod
    def files(self, path: str) -> list[FileInfo]:
        """Every file below a folder ([] when it does not exist)."""

    @abstractmethod
    def delete(self, path: str) -> None:
        """Delete a file if it exists."""

    @abstractmethod
    def delete_tree(self, path: str) -> None:
        """Delete a folder and everything below it, if it exists."""

    @abstractmethod
    def copy(self, source: str, target: str) -> None:
        """Copy one file."""

    @abstractmethod
    def move_tree(self, source: str, target: str) -> None:
        """Move a folder (``target`` must not exist)."""

    def prune(self, path: str) -> None:
        """Remove a folder if it is empty (object stores have no empty folders: nothing to do)."""

    def folder_mtime(self, path: str) -> float | None:
        """Modification time of a folder, or None where folders are not objects (object stores)."""
        return None

    def probe(self) -> None:
        """Fail now, with a clear StoreAccessError, when the store cannot be used at all."""


class LocalBackend(Backend):
    """A folder on a local (POSIX) filesystem."""

    remote = False

    def __init__(self, root: str):
        self.root = Path(root)
        self.url = root
        self.retry = RetryPolicy(attempts=1)  # local errors are not transient

    def _path(self, path: str) -> Path:
        return self.root / path

    def read(self, path: str, size: int | None = None) -> bytes:
        return self._call("read", path, self._path(path).read_bytes)

    def stat(self, path: str) -> StoredFile:
        return self._call("stat", path, lambda: StoredFile(self._path(path).stat().st_size, None))

    def write(self, path: str, data: bytes) -> None:
        self._call("write", path, lambda: _write_synced(self._path(path), data))

    def create_exclusive(self, path: str, data: bytes) -> bool:
        target = self._path(path)
        temporary = target.with_name(f".tmp-{uuid.uuid4().hex}")

        def create() -> bool:
            try:
                _write_synced(temporary, data)
                os.link(temporary, target)  # atomic, and fails if the target exists: first writer wins
            except FileExistsError:
                return False
            finally:
                temporary.unlink(missing_ok=True)
            _fsync_dir(target.parent)
            return True

        return self._call("create", path, create)

    def exists(self, path: str) -> bool:
        return self._call("stat", path, self._path(path).exists)

    def list_dir(self, path: str) -> list[str]:
        def listing() -> list[str]:
            try:
                return sorted(os.listdir(self._path(path)))
            except FileNotFoundError:
                return []

        return self._call("list", path, listing)

    def files(self, path: str) -> list[FileInfo]:
        def walk() -> list[FileInfo]:
            found = []
            for folder, _, names in os.walk(self._path(path)):
                for name in names:
                    full = Path(folder, name)
                    try:
                        stat = full.stat()
                    except FileNotFoundError:  # removed while walking
                        continue
                    found.append(FileInfo(full.relative_to(self.root).as_posix(), stat.st_size, stat.st_mtime))
            return found

        return self._call("list", path, walk)

    def delete(self, path: str) -> None:
        self._call("delete", path, lambda: self._path(path).unlink(missing_ok=True))

    def delete_tree(self, path: str) -> None:
        def remove() -> None:
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(self._path(path))

        self._call("delete", path, remove)

    def copy(self, source: str, target: str) -> None:
        def copy() -> None:
            self._path(target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self._path(source), self._path(target))

        self._call("copy", source, copy)

    def move_tree(self, source: str, target: str) -> None:
        def move() -> None:
            if not self._path(source).exists():  # nothing left to move, as for an object store
                return
            self._path(target).parent.mkdir(parents=True, exist_ok=True)
            os.rename(self._path(source), self._path(target))

        self._call("move", source, move)

    def prune(self, path: str) -> None:
        with contextlib.suppress(OSError):
            os.rmdir(self._path(path))  # refuses a non-empty folder, so a writer that just started is never harmed

    def folder_mtime(self, path: str) -> float | None:
        try:
            return self._path(path).stat().st_mtime
        except FileNotFoundError:
            return None

    def probe(self) -> None:
        self._call("open", "", lambda: self.root.mkdir(parents=True, exist_ok=True))


def _write_synced(path: Path, data: bytes) -> None:
    # fsync so that after a power loss a manifest never points at parts whose data did not reach the disk.
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class FsspecBackend(Backend):
    """A root on any fsspec filesystem; built for S3 (s3fs), where every PUT is atomic and reads are consistent."""

    remote = True
    concurrency = 16

    def __init__(self, url: str, filesystem: Any, retry: RetryPolicy):
        self.url = url
        self.fs = filesystem
        self.root = filesystem._strip_protocol(url).rstrip("/")
        self.retry = retry
        protocols = filesystem.protocol if isinstance(filesystem.protocol, (tuple, list)) else [filesystem.protocol]
        self.s3 = "s3" in protocols

    def _full(self, path: str) -> str:
        return f"{self.root}/{path}" if path else self.root

    def _relative(self, full: str) -> str:
        return full[len(self.root) + 1:] if full.startswith(self.root + "/") else full

    def read(self, path: str, size: int | None = None) -> bytes:
        options = {}
        if self.s3 and (size is None or size <= self.fs.default_block_size):
            options["max_concurrency"] = 1  # saves the HEAD request s3fs makes to decide on a ranged download
        return self._call("read", path, lambda: self.fs.cat_file(self._full(path), **options))

    def stat(self, path: str) -> StoredFile:
        def head() -> StoredFile:
            if not self.s3:
                return StoredFile(int(self.fs.info(self._full(path))["size"]), None)
            bucket, key, _ = self.fs.split_path(self._full(path))
            answer = self.fs.call_s3("head_object", Bucket=bucket, Key=key, ChecksumMode="ENABLED")
            checksum = answer.get("ChecksumSHA256")
            # A multipart upload's checksum is of its parts' checksums ("…-N"): nothing a manifest can be compared with.
            whole = checksum and "-" not in checksum and answer.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT"
            return StoredFile(int(answer["ContentLength"]), base64.b64decode(checksum).hex() if whole else None)

        return self._call("stat", path, head)

    def write(self, path: str, data: bytes) -> None:
        options: dict[str, Any] = {}
        if self.s3 and len(data) < SINGLE_PUT_BYTES:
            # S3 computes the SHA-256 of what it received, refuses the PUT if it differs from what botocore sent, and
            # keeps it: a later check of the file is a HEAD, not a download.
            options = {"ChecksumAlgorithm": "SHA256", "chunksize": SINGLE_PUT_BYTES}
        self._call("write", path, lambda: self.fs.pipe_file(self._full(path), data, **options))

    def create_exclusive(self, path: str, data: bytes) -> bool:
        def create() -> bool:
            try:
                self.fs.pipe_file(self._full(path), data, mode="create")
            except FileExistsError:
                return False
            return True

        return self._call("create", path, create)

    def exists(self, path: str) -> bool:
        return self._call("stat", path, lambda: self.fs.exists(self._full(path)))

    def list_dir(self, path: str) -> list[str]:
        def listing() -> list[str]:
            try:
                entries = self.fs.ls(self._full(path), detail=False)
            except FileNotFoundError as error:
                if s3_error_code(error) == "NoSuchBucket":
                    raise
                return []
            return sorted(entry.rstrip("/").rsplit("/", 1)[-1] for entry in entries)

        return self._call("list", path, listing)

    def files(self, path: str) -> list[FileInfo]:
        def find() -> list[FileInfo]:
            try:
                found = self.fs.find(self._full(path), detail=True)
            except FileNotFoundError as error:
                if s3_error_code(error) == "NoSuchBucket":
                    raise
                return []
            return [FileInfo(self._relative(name), int(info.get("size") or 0), _mtime(info))
                    for name, info in found.items() if info.get("type", "file") == "file"]

        return self._call("list", path, find)

    def delete(self, path: str) -> None:
        def remove() -> None:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self._full(path))

        self._call("delete", path, remove)

    def delete_tree(self, path: str) -> None:
        for info in self.files(path):
            self.delete(info.path)

    def copy(self, source: str, target: str) -> None:
        self._call("copy", source, lambda: self.fs.cp_file(self._full(source), self._full(target)))

    def move_tree(self, source: str, target: str) -> None:
        # Object stores have no rename: copy every file, then delete the originals.
        for info in self.files(source):
            self.copy(info.path, target + info.path[len(source):])
        self.delete_tree(source)

    def probe(self) -> None:
        # A few quick attempts: an endpoint that refuses connections is a configuration error, not a blip.
        quick = dataclasses.replace(self.retry, attempts=min(3, self.retry.attempts), max_delay=1.0)
        try:
            self._call("open", "", lambda: self.fs.ls(self._full(""), detail=False), retry=quick)
        except FileNotFoundError:
            pass  # a new, empty prefix
        except StoreRetryError as error:
            raise StoreAccessError(f"cannot reach store {self.url} (check AWS_ENDPOINT_URL and the network): "
                                   f"{error}") from None


def _mtime(info: dict[str, Any]) -> float:
    for field in ("LastModified", "mtime", "created"):
        value = info.get(field)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, (int, float)):
            return float(value)
    return time.time()  # unknown age counts as new, so garbage collection never removes it


def display_url(url: str | os.PathLike[str]) -> str:
    """The store URL as shown in messages and refs: normalised; refuses URLs that carry credentials.

    Raises:
        ValueError: the URL holds userinfo (``user:secret@``), a query or a fragment.
    """
    text = os.fspath(url)
    if "://" in text:
        authority = text.split("://", 1)[1].split("/", 1)[0]
        if "@" in authority or "?" in text or "#" in text:
            raise ValueError(redact(f"store URL {text} must not carry credentials or options; credentials come from "
                                    "the AWS environment, profile or instance role"))
    return normalize_path(text)


def open_backend(url: str | os.PathLike[str], filesystem: Any | None, retry: RetryPolicy) -> Backend:
    """The backend for a store URL: local folder for plain paths and ``file://``, fsspec for any other scheme.

    Args:
        url: ``/path``, ``~/path``, ``file:///path``, ``s3://bucket/prefix`` or another fsspec URL.
        filesystem: an fsspec filesystem to use instead of building one from the URL (tests wrap one to inject faults).
        retry: retry policy for remote calls.
    """
    shown = display_url(url)
    if "://" not in shown:
        return LocalBackend(shown)
    if filesystem is None:
        filesystem = _filesystem(shown.split("://", 1)[0])
    return FsspecBackend(shown, filesystem, retry)


_FILESYSTEMS: dict[tuple[Any, ...], Any] = {}


def _filesystem(protocol: str) -> Any:
    """A filesystem per process, protocol and AWS environment: building an S3 client takes most of a second.

    fsspec's own instance cache cannot be used: it ignores the environment, where endpoint and credentials live.
    """
    import fsspec

    aws = tuple(sorted((name, value) for name, value in os.environ.items()
                       if name.startswith("AWS_") or name == READ_TIMEOUT_VARIABLE))  # fmt: skip
    cache_key = (os.getpid(), protocol, aws)
    if cache_key not in _FILESYSTEMS:
        s3 = protocol in ("s3", "s3a")
        options = S3_OPTIONS
        if s3 and (timeout := os.environ.get(READ_TIMEOUT_VARIABLE)):
            options = {**S3_OPTIONS, "config_kwargs": {**S3_OPTIONS["config_kwargs"], "read_timeout": float(timeout)}}
        filesystem = fsspec.filesystem(protocol, **(options if s3 else {}))
        if s3:
            filesystem.retries = 1  # s3fs's own retry loop; RetryPolicy retries instead
        _FILESYSTEMS[cache_key] = filesystem
    return _FILESYSTEMS[cache_key]
