"""Prefect caching on the artifact store's content keys.

A task run is Cached exactly when every artifact it writes is in the store and verifies against its digests; its
Prefect cache record lives next to the artifacts (``<store>/prefect-records/<key>``), so runs on any machine and from
any Prefect home that share the store share the cache. The record never outlives its artifacts: when one is missing,
fails verification (it is then quarantined) or was recomputed into other bytes than the record holds, the record is
deleted before Prefect looks for it, and the task runs again.

On a remote store the artifacts are checked by what the storage says of each part — its size and the SHA-256 S3
computed when it was written, one HEAD request each — so a cached rerun costs requests, not downloads; a part S3
keeps no SHA-256 for is downloaded (once per machine, through the read cache) and hashed. ``TINT_REUSE_CHECK=full``
downloads and hashes every part instead, as ``tint store verify`` does.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect.cache_policies import CachePolicy
from prefect.context import TaskRunContext
from prefect.filesystems import LocalFileSystem, RemoteFileSystem
from prefect.results import ResultStore

from tint_core.pipeline.resources import open_store
from tint_core.store import ArtifactRef, ArtifactStore, canonical_json, sha256_hex
from tint_core.store.backends import display_url

RECORDS = "prefect-records"
REUSE_CHECK_VARIABLE = "TINT_REUSE_CHECK"
REUSE_CHECKS = ("stored", "full")


def _deep_reuse_check() -> bool:
    """Whether reused artifacts are downloaded and hashed (``full``) rather than checked by their stored SHA-256s."""
    check = os.environ.get(REUSE_CHECK_VARIABLE, "stored")
    if check not in REUSE_CHECKS:
        raise ValueError(f"{REUSE_CHECK_VARIABLE} is {check!r}: use one of {', '.join(REUSE_CHECKS)}")
    return check == "full"


def record_key(keys: list[str]) -> str:
    """The Prefect cache key of a task writing ``keys``: the key itself for one artifact, a digest of all for several."""
    return keys[0] if len(keys) == 1 else sha256_hex(canonical_json(keys).encode())


def _refs(result: Any) -> list[ArtifactRef]:
    return list(result) if isinstance(result, list) else [result]


def _record_is_current(results: ResultStore, key: str, store: ArtifactStore, keys: list[str]) -> bool:
    """Whether the record under ``key`` (if any) covers ``keys`` (already verified) and returns artifacts now in the
    store, digest for digest. A record may hold more artifacts than ``keys``, those its task wrote from them: they
    are verified here."""
    if not results.exists(key):
        return True
    try:
        refs = _refs(results.read(key).result)
    except Exception:  # noqa: BLE001  (an unreadable record, whatever the reason, is as good as none)
        return False
    recorded = {ref.key: ref.digest for ref in refs}
    extra = [k for k in recorded if k not in set(keys)]
    if not set(keys) <= set(recorded):
        return False
    if set(store.verify(extra, use_cache=True, deep=_deep_reuse_check()).valid) != set(extra):
        return False
    return all(store.inspect(k).digest == digest for k, digest in recorded.items())


def _delete_record(results: ResultStore, key: str) -> None:
    storage = results.result_storage
    if isinstance(storage, LocalFileSystem):
        Path(storage.basepath).expanduser().joinpath(key).unlink(missing_ok=True)
    elif isinstance(storage, RemoteFileSystem):
        path = f"{storage.basepath.rstrip('/')}/{key}"
        if storage.filesystem.exists(path):
            storage.filesystem.rm(path)
    else:
        raise TypeError(f"cannot delete cache records from {type(storage).__name__}; use store_records()")


@dataclass
class StoredArtifacts(CachePolicy):
    """Cache policy of a pipeline step: its cache key is the content key of what it writes.

    Args:
        keys: the step's keys function (``tint_core.pipeline``), called with the task's arguments; the task must take
            the store URL as ``store``.
        variant: for a task that also writes artifacts whose keys are only known once ``keys`` exist (a worker's
            unit: its image sets depend on its specialisations' digests), a function of the task's arguments giving
            what else those artifacts depend on (JSON). It joins the cache key; the task returns references to every
            artifact it wrote, and the record counts only while all of them verify.
    """

    keys: Callable[..., list[str]] | None = None
    variant: Callable[..., Any] | None = None

    def compute_key(self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any],
                    **kwargs: Any) -> str | None:  # fmt: skip
        if self.keys is None:
            raise ValueError("StoredArtifacts needs the step's keys function")
        keys = self.keys(**inputs)
        key = record_key(keys) if self.variant is None else record_key([*keys, canonical_json(self.variant(**inputs))])
        store = open_store(inputs["store"])
        valid = set(store.verify(keys, use_cache=True, deep=_deep_reuse_check()).valid)
        results = task_ctx.result_store
        if valid != set(keys) or not _record_is_current(results, key, store, keys):
            _delete_record(results, key)
        return key


def store_records(store: str) -> Path | RemoteFileSystem:
    """Result storage for the cache records of steps writing to ``store``: ``<store>/prefect-records``.

    A local store gives a path; a remote one a ``RemoteFileSystem`` block saved under a name derived from the URL
    (Prefect accepts only saved blocks as result storage), with credentials from the environment as for the store.
    The saved block itself is returned, not its slug: Prefect would load a slug from the server again for every task
    run.
    """
    url = display_url(store)
    if "://" not in url:
        return Path(url) / RECORDS
    block = RemoteFileSystem(basepath=f"{url}/{RECORDS}")
    block.save(f"tint-records-{sha256_hex(url.encode())[:16]}", overwrite=True)
    return block
