"""The content-addressed artifact store.

Layout under the store root::

    artifacts/<key>/manifest.json            written last, atomically and exclusively: the artifact exists iff it does
    artifacts/<key>/<writer>/<part>.<ext>    parts, in a folder private to the process that wrote them
    quarantine/<key>-<time>-<id>/            artifacts that failed verification, with reason.json

A writer puts its parts in a fresh writer folder, then creates the manifest only if none exists. A crash at any
moment leaves either a complete artifact or an invisible writer folder (removed by ``gc``); of concurrent writers of
one key exactly one manifest wins and the others return it, deleting only their own folder.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NoReturn

from pydantic import ValidationError

from tint_core.store.backends import Backend, open_backend
from tint_core.store.cache import DEFAULT_CACHE_BYTES, DEFAULT_CACHE_DIR, PartCache
from tint_core.store.errors import ArtifactNotFoundError, CorruptArtifactError, DigestMismatchError, StoreError
from tint_core.store.keys import canonicalize, input_digest, is_digest, sha256_hex
from tint_core.store.manifest import ArtifactRef, Manifest, PartEntry, artifact_digest
from tint_core.store.parts import check_part_name, decode_part, encode_part
from tint_core.store.retry import RetryPolicy

logger = logging.getLogger("tint_core.store")

DEFAULT_STORE_URL = "~/.cache/tint/store"
ARTIFACTS = "artifacts"
QUARANTINE = "quarantine"
LOGS = "logs"
MANIFEST = "manifest.json"
LOG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")  # a segment of a log path: never '..', never absolute
DEFAULT_GC_AGE = 24 * 3600.0  # far longer than any put takes, so gc never removes a live writer's folder
_VERIFY_BATCH_BYTES = 256 * 2**20
_CREATE_ATTEMPTS = 3  # a manifest that vanishes (quarantined) between our failed create and our read: try again


def _check_key(key: object) -> str:
    if not is_digest(key):
        raise ValueError(f"artifact key must be a 64-character lower-case hex string (see artifact_key), got {key!r}")
    return key  # type: ignore[return-value]


def _batches(manifest: Manifest, names: Iterable[str] | None = None) -> Iterator[list[str]]:
    """Part names (all, or ``names``) in groups of at most ``_VERIFY_BATCH_BYTES`` (or one part), to bound memory
    while verifying."""
    batch: list[str] = []
    total = 0
    for name in manifest.parts if names is None else names:
        entry = manifest.parts[name]
        if batch and total + entry.size > _VERIFY_BATCH_BYTES:
            yield batch
            batch, total = [], 0
        batch.append(name)
        total += entry.size
    if batch:
        yield batch


def _problem(name: str, entry: PartEntry, size: int | None, sha256: str | None) -> str | None:
    """What is wrong with a part whose stored size and SHA-256 are these (size None: absent), or None."""
    if size is None:
        return f"part {name!r} is missing"
    if size != entry.size:
        return f"part {name!r} has {size} bytes, the manifest says {entry.size}"
    if sha256 is not None and sha256 != entry.sha256:
        return f"part {name!r} does not match its SHA-256"
    return None


def _stamp() -> str:
    """A time-ordered unique id: readable in listings, never shared by two writers."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"


@dataclass
class VerifyReport:
    """Result of ``ArtifactStore.verify``: keys that verified, and reasons and new locations of those that did not."""

    valid: list[str] = field(default_factory=list)
    corrupt: dict[str, str] = field(default_factory=dict)
    quarantined: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every artifact verified."""
        return not self.corrupt

    def __str__(self) -> str:
        lines = [f"{len(self.valid)} valid, {len(self.corrupt)} corrupt, {len(self.quarantined)} quarantined"]
        lines += [f"  {key}: {reason}" for key, reason in self.corrupt.items()]
        return "\n".join(lines)


@dataclass
class GcReport:
    """Result of ``ArtifactStore.gc``: abandoned files removed and their total size."""

    files: int = 0
    bytes: int = 0


class Artifact:
    """A complete artifact: its manifest plus verified access to its parts (each read checks size and SHA-256).

    A part that fails verification gets the artifact quarantined and raises ``CorruptArtifactError``.
    """

    def __init__(self, store: ArtifactStore, manifest: Manifest, raw_manifest: bytes):
        self.store = store
        self.manifest = manifest
        self._raw = raw_manifest

    def __repr__(self) -> str:
        return f"Artifact({self.key[:12]}…, step={self.manifest.step!r}, parts={list(self.names)})"

    @property
    def key(self) -> str:
        """The artifact's key."""
        return self.manifest.key

    @property
    def ref(self) -> ArtifactRef:
        """A small serialisable reference to pass to other tasks."""
        return ArtifactRef(store=self.store.url, key=self.key, digest=self.manifest.digest)

    @property
    def names(self) -> tuple[str, ...]:
        """Part names."""
        return tuple(self.manifest.parts)

    def read_bytes(self, name: str) -> bytes:
        """A part's verified bytes."""
        return self._read([name])[name]

    def __getitem__(self, name: str) -> Any:
        """A decoded part: ``dict[str, Tensor]``, ``pyarrow.Table``, ``ImageSet`` or JSON data."""
        return decode_part(self._entry(name).kind, self.read_bytes(name))

    def load(self) -> dict[str, Any]:
        """Every part, decoded (remote parts are fetched concurrently)."""
        data = self._read(self.names)
        return {name: decode_part(self.manifest.parts[name].kind, data[name]) for name in self.names}

    def _entry(self, name: str) -> PartEntry:
        if name not in self.manifest.parts:
            raise KeyError(f"artifact {self.key} has no part {name!r}; parts: {', '.join(self.names) or 'none'}")
        return self.manifest.parts[name]

    def _read(self, names: tuple[str, ...] | list[str]) -> dict[str, bytes]:
        for name in names:
            self._entry(name)
        return self.store._read_parts(self.manifest, self._raw, names, use_cache=True, quarantine=True)


class ArtifactStore:
    """Content-addressed, verified artifact store on a local folder or an fsspec URL (``s3://bucket/prefix``).

    S3 endpoint and credentials come from the usual AWS settings (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
    profiles, instance roles), never from arguments. Opening probes the store, so a missing bucket, denied access or
    unreachable endpoint fails here with ``StoreAccessError``.

    Args:
        url: local folder (``~`` and relative paths allowed), ``file://`` URL or fsspec URL.
        filesystem: use this fsspec filesystem for a remote URL instead of building one (tests inject faults here).
        retry: retry policy for transient remote errors.
        cache_dir: local read cache for remote parts (default ``~/.cache/tint/store-parts``).
        cache_bytes: bound on the read cache; 0 disables it. Local stores never cache.
    """

    def __init__(
        self,
        url: str | os.PathLike[str] = DEFAULT_STORE_URL,
        *,
        filesystem: Any | None = None,
        retry: RetryPolicy | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ):
        self._backend: Backend = open_backend(url, filesystem, retry or RetryPolicy())
        self._backend.probe()
        use_cache = self._backend.remote and cache_bytes > 0
        self.cache = PartCache(cache_dir or DEFAULT_CACHE_DIR, cache_bytes) if use_cache else None

    @property
    def url(self) -> str:
        """Display URL of the store (normalised, without credentials)."""
        return self._backend.url

    def __repr__(self) -> str:
        return f"ArtifactStore({self.url!r})"

    # 1. Reading -------------------------------------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        """Whether a complete artifact (one with a manifest) exists under ``key``. Does not verify it."""
        return self._backend.exists(f"{ARTIFACTS}/{_check_key(key)}/{MANIFEST}")

    def get(self, key_or_ref: str | ArtifactRef) -> Artifact:
        """Open an artifact for verified reading.

        Raises:
            ArtifactNotFoundError: no complete artifact under the key.
            DigestMismatchError: a reference's digest differs from the stored artifact's.
            CorruptArtifactError: the manifest is unreadable (the artifact is quarantined).
        """
        if isinstance(key_or_ref, ArtifactRef):
            if key_or_ref.store != self.url:
                raise ValueError(f"reference to store {key_or_ref.store} used with store {self.url}")
            key, expected = key_or_ref.key, key_or_ref.digest
        else:
            key, expected = _check_key(key_or_ref), None
        found = self._read_manifest(key, quarantine=True)
        if found is None:
            raise ArtifactNotFoundError(f"no artifact {key} in store {self.url}")
        raw, manifest = found
        if expected is not None and manifest.digest != expected:
            raise DigestMismatchError(f"artifact {key} in store {self.url} has digest {manifest.digest}, the "
                                      f"reference expects {expected}: it was recomputed; recompute what used it")
        return Artifact(self, manifest, raw)

    def ref(self, key: str) -> ArtifactRef:
        """Reference to an existing artifact (ArtifactNotFoundError if absent)."""
        return self.get(key).ref

    def inspect(self, key: str) -> Manifest:
        """The manifest of an existing artifact: step, parameters, inputs, creation time, parts with sizes."""
        return self.get(key).manifest

    def list(self, step: str | None = None) -> list[Manifest]:
        """Manifests of every complete artifact (of one step if given), oldest first. Unreadable ones are skipped."""
        keys = self._keys()
        raw = self._backend.read_many({f"{ARTIFACTS}/{key}/{MANIFEST}": None for key in keys})
        manifests = []
        for path, data in raw.items():
            if data is None:
                continue
            try:
                manifest = Manifest.from_bytes(data)
            except ValidationError:
                logger.warning("skipping unreadable manifest %s in store %s (run verify)", path, self.url)
                continue
            if step is None or manifest.step == step:
                manifests.append(manifest)
        return sorted(manifests, key=lambda manifest: manifest.created)

    def _keys(self) -> list[str]:
        return [name for name in self._backend.list_dir(ARTIFACTS) if is_digest(name)]

    def _read_manifest(self, key: str, *, quarantine: bool) -> tuple[bytes, Manifest] | None:
        path = f"{ARTIFACTS}/{key}/{MANIFEST}"
        try:
            raw = self._backend.read(path)
        except FileNotFoundError:
            return None
        try:
            manifest = Manifest.from_bytes(raw)
            problem = None if manifest.key == key else f"manifest names key {manifest.key}"
        except ValidationError as error:
            problem = f"unreadable manifest: {error.error_count()} error(s), first: {error.errors()[0]['msg']}"
        if problem:  # rejected outside the except block, so that the error carries no chained library exception
            self._reject(key, raw, problem, quarantine)
        return raw, manifest

    def _read_parts(self, manifest: Manifest, raw: bytes, names: Iterable[str], *, use_cache: bool,
                    quarantine: bool) -> dict[str, bytes]:
        """Verified bytes of some parts; a missing or damaged part rejects the whole artifact."""
        cache = self.cache if use_cache else None
        result: dict[str, bytes] = {}
        paths: dict[str, str] = {}
        for name in names:
            cached = cache.get(manifest.parts[name].sha256) if cache else None
            if cached is not None:
                result[name] = cached
            else:
                paths[name] = f"{ARTIFACTS}/{manifest.key}/{manifest.part_path(name)}"
        fetched = self._backend.read_many({path: manifest.parts[name].size for name, path in paths.items()})
        problems = []
        for name, path in paths.items():
            entry, data = manifest.parts[name], fetched[path]
            size = None if data is None else len(data)
            if problem := _problem(name, entry, size, sha256_hex(data) if size == entry.size else None):
                problems.append(problem)
            else:
                result[name] = data
                if cache:
                    cache.put(entry.sha256, data)
        if problems:
            self._reject(manifest.key, raw, "; ".join(problems), quarantine)
        return result

    def _check_stored(self, manifest: Manifest, raw: bytes, *, use_cache: bool, quarantine: bool) -> None:
        """Check the parts by what the storage says of them (size, SHA-256: no download); read and hash only those it
        keeps no SHA-256 for. A missing or damaged part rejects the whole artifact."""
        paths = {name: f"{ARTIFACTS}/{manifest.key}/{manifest.part_path(name)}" for name in manifest.parts}
        stored = self._backend.stat_many(list(paths.values()))
        problems, unchecked = [], []
        for name, path in paths.items():
            size, sha256 = (stored[path].size, stored[path].sha256) if stored[path] else (None, None)
            if problem := _problem(name, manifest.parts[name], size, sha256):
                problems.append(problem)
            elif sha256 is None:
                unchecked.append(name)
        if problems:
            self._reject(manifest.key, raw, "; ".join(problems), quarantine)
        for names in _batches(manifest, unchecked):
            self._read_parts(manifest, raw, names, use_cache=use_cache, quarantine=quarantine)

    def _reject(self, key: str, raw: bytes, reason: str, quarantine: bool) -> NoReturn:
        where = self.quarantine(key, reason, expected_manifest=raw) if quarantine else None
        action = f"quarantined to {where}; it will be recomputed" if where else "not quarantined"
        raise CorruptArtifactError(f"artifact {key} in store {self.url} failed verification ({reason}); {action}",
                                   key, where)

    # 2. Writing -------------------------------------------------------------------------------------------------

    def put(
        self,
        key: str,
        parts: Mapping[str, Any],
        *,
        step: str,
        params: Any = None,
        inputs: Mapping[str, object] | None = None,
        seconds: float | None = None,
    ) -> ArtifactRef:
        """Store an artifact under ``key`` unless one is already there; idempotent and safe to race.

        Args:
            key: from ``artifact_key``.
            parts: ``{name: value}``; a value is a mapping of tensors (safetensors), a ``pyarrow.Table`` or an
                ``ImageSet`` (Parquet), or JSON data / a pydantic model (JSON).
            step: the step's name, recorded in the manifest.
            params: the step's parameters, recorded (canonicalised) in the manifest.
            inputs: ``{name: digest or ArtifactRef}``, recorded in the manifest.
            seconds: how long computing the parts took, recorded in the manifest (for reports; not in the digest).

        Returns:
            A reference to the artifact now stored under ``key`` — an earlier or concurrent writer's if one won.
        """
        _check_key(key)
        try:
            existing = self._read_manifest(key, quarantine=True)
        except CorruptArtifactError as error:
            logger.warning("%s; writing it again", error)
            existing = None
        if existing is not None:
            logger.debug("artifact %s already in store %s", key, self.url)
            return ArtifactRef(store=self.url, key=key, digest=existing[1].digest)

        # 1. Encode and hash every part before touching the store, so bad values fail without leaving files.
        encoded = {check_part_name(name): encode_part(name, value) for name, value in parts.items()}
        entries = {name: PartEntry(kind=kind, size=len(data), sha256=sha256_hex(data))
                   for name, (kind, data) in encoded.items()}
        manifest = Manifest(
            key=key,
            digest=artifact_digest(entries),
            step=step,
            params=canonicalize(params),
            inputs={str(name): input_digest(value, str(name)) for name, value in (inputs or {}).items()},
            created=datetime.now(timezone.utc),
            seconds=seconds,
            writer=_stamp(),
            parts=entries,
        )
        folder = f"{ARTIFACTS}/{key}"

        # 2. Parts into this writer's private folder: invisible to readers, untouched by other writers.
        self._backend.write_many({f"{folder}/{manifest.part_path(name)}": data
                                  for name, (_, data) in encoded.items()})

        # 3. The manifest last, only if no other writer's is there: from this instant the artifact is visible.
        for _ in range(_CREATE_ATTEMPTS):
            if self._backend.create_exclusive(f"{folder}/{MANIFEST}", manifest.to_bytes()):
                logger.debug("stored artifact %s (%s, %d parts, %d bytes) in store %s",
                             key, step, len(entries), manifest.size, self.url)
                return ArtifactRef(store=self.url, key=key, digest=manifest.digest)
            try:
                winner = self._read_manifest(key, quarantine=True)
            except CorruptArtifactError as error:
                logger.warning("%s; writing it again", error)
                continue
            if winner is None:  # quarantined or removed since our create failed
                continue
            if winner[1].writer != manifest.writer:  # not our own create answered late (a retried PUT)
                self._backend.delete_tree(f"{folder}/{manifest.writer}")
            return ArtifactRef(store=self.url, key=key, digest=winner[1].digest)
        raise StoreError(f"could not write the manifest of artifact {key} in store {self.url}: it kept changing")

    def check_writable(self) -> None:
        """Write and delete a small probe file, so that a store that cannot be written fails now.

        Raises:
            StoreAccessError: the store refuses writes (read-only folder, denied bucket policy, …).
        """
        probe = f".write-check-{uuid.uuid4().hex}"
        self._backend.write(probe, b"")
        self._backend.delete(probe)

    # 3. Maintenance ---------------------------------------------------------------------------------------------

    def quarantine(self, key: str, reason: str, *, expected_manifest: bytes | None = None) -> str | None:
        """Move an artifact aside so that it is never served again and its step recomputes it.

        Args:
            key: the artifact's key.
            reason: why, written to ``reason.json`` in the quarantine folder.
            expected_manifest: quarantine only if the manifest still has these bytes (so an artifact recomputed
                meanwhile is left alone).

        Returns:
            The quarantine folder's URL, or None when there was nothing (or something else) to move.
        """
        folder = f"{ARTIFACTS}/{_check_key(key)}"
        try:
            raw = self._backend.read(f"{folder}/{MANIFEST}")
        except FileNotFoundError:
            return None
        if expected_manifest is not None and raw != expected_manifest:
            return None
        target = f"{QUARANTINE}/{key}-{_stamp()}"
        note = {"key": key, "reason": reason, "quarantined": datetime.now(timezone.utc).isoformat()}
        self._backend.write(f"{target}/reason.json", json.dumps(note, indent=1).encode("utf-8"))
        self._backend.copy(f"{folder}/{MANIFEST}", f"{target}/{MANIFEST}")
        self._backend.delete(f"{folder}/{MANIFEST}")  # invisible from here on
        try:
            writer = Manifest.from_bytes(raw).writer
        except ValidationError:
            writer = None  # its parts cannot be told apart from other writers' folders: gc will remove them
        if writer is not None:
            self._backend.move_tree(f"{folder}/{writer}", f"{target}/{writer}")
        location = f"{self.url}/{target}"
        logger.warning("quarantined artifact %s of store %s to %s: %s", key, self.url, location, reason)
        return location

    def verify(
        self, keys: Iterable[str] | None = None, *, quarantine: bool = True, use_cache: bool = False, deep: bool = True
    ) -> VerifyReport:
        """Check every part of every artifact (or of ``keys``) against its manifest.

        Args:
            keys: the artifacts to check; all of them by default.
            quarantine: move artifacts that fail aside (otherwise only report them).
            use_cache: check remote parts through the local read cache (each part is downloaded once per machine,
                and its cached copy is verified against the manifest's digest); by default the cache is bypassed
                so that the remote bytes themselves are checked.
            deep: read and hash every part (the default). False, on a remote store: trust what the storage checked
                when the part was written — its size and the SHA-256 S3 computed of it, one HEAD request per part —
                and read only the parts it keeps no SHA-256 for (written before tint asked for one, larger than one
                PUT, or not on S3). A local store is always checked deep.
        """
        report = VerifyReport()
        for key in (self._keys() if keys is None else [_check_key(key) for key in keys]):
            try:
                found = self._read_manifest(key, quarantine=quarantine)
                if found is None:
                    continue  # not (yet) an artifact: a writer at work or leftovers for gc
                raw, manifest = found
                if deep or not self._backend.remote:
                    for names in _batches(manifest):
                        self._read_parts(manifest, raw, names, use_cache=use_cache, quarantine=quarantine)
                else:
                    self._check_stored(manifest, raw, use_cache=use_cache, quarantine=quarantine)
            except CorruptArtifactError as error:
                report.corrupt[key] = str(error)
                if error.quarantined_to:
                    report.quarantined[key] = error.quarantined_to
            else:
                report.valid.append(key)
        return report

    # Logs: append-only tables next to the artifacts (a benchmark's history of runs) --------------------------------

    def append_log(self, log: str, name: str, data: bytes) -> None:
        """Add the entry ``name`` to the append-only log ``log`` (``logs/<log>/<name>``), written whole or not at all.

        Raises:
            FileExistsError: the log already has an entry of that name (entries are never overwritten).
        """
        for part in (log, name):
            if not all(LOG_NAME.fullmatch(segment) for segment in part.split("/")):
                raise ValueError(f"bad log path {part!r}: '/'-separated names of letters, digits, '_', '.' and '-', "
                                 "each starting with a letter or digit, at most 200 characters")  # fmt: skip
        if not self._backend.create_exclusive(f"{LOGS}/{log}/{name}", data):
            raise FileExistsError(f"log {log!r} already has an entry {name!r} in store {self.url}")

    def read_log(self, log: str) -> dict[str, bytes]:
        """Every entry of the log ``log`` (name → bytes), in name order; empty when the log does not exist."""
        folder = f"{LOGS}/{log}"
        paths = sorted(info.path for info in self._backend.files(folder) if not info.path.rsplit("/", 1)[-1].startswith("."))
        found = self._backend.read_many(dict.fromkeys(paths)) if paths else {}
        return {path[len(folder) + 1 :]: data for path, data in found.items() if data is not None}

    def gc(self, older_than: float = DEFAULT_GC_AGE) -> GcReport:
        """Remove what crashed or losing writers left behind: writer folders no manifest refers to.

        Args:
            older_than: only remove leftovers whose newest file is at least this many seconds old, so that writers
                still at work are never disturbed.
        """
        report = GcReport()
        now = time.time()
        for key in self._keys():
            folder = f"{ARTIFACTS}/{key}"
            try:
                found = self._read_manifest(key, quarantine=False)
            except CorruptArtifactError:
                continue  # verify decides about it; its parts are evidence
            keep = {MANIFEST} | ({found[1].writer} if found else set())
            groups: dict[str, list] = {}
            for info in self._backend.files(folder):
                groups.setdefault(info.path[len(folder) + 1:].split("/", 1)[0], []).append(info)
            for top, infos in groups.items():
                if top in keep or now - max(info.mtime for info in infos) < older_than:
                    continue
                for info in infos:
                    self._backend.delete(info.path)
                    report.files += 1
                    report.bytes += info.size
                self._backend.prune(f"{folder}/{top}")
            # A writer killed between creating its folder and writing its first file leaves an empty folder.
            for top in set(self._backend.list_dir(folder)) - keep - set(groups):
                created = self._backend.folder_mtime(f"{folder}/{top}")
                if created is not None and now - created >= older_than:
                    self._backend.prune(f"{folder}/{top}")
            self._backend.prune(folder)
        if report.files:
            logger.info("gc removed %d abandoned files (%d bytes) from store %s", report.files, report.bytes, self.url)
        return report
