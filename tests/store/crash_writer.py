"""Writer processes for the crash and concurrency tests (imported by the forkserver, so keep it importable alone)."""

from __future__ import annotations

import itertools
import os
from typing import Any

import pyarrow as pa
import safetensors.torch  # noqa: F401 - imported here so that the forkserver loads it once for every writer
import torch
from PIL import Image

from tint_core.store import ArtifactStore, ImageSet, RetryPolicy, artifact_key

Image.init()  # PIL loads its format plugins on first save: do it once in the forkserver, not in every writer


def key_of(index: int) -> str:
    return artifact_key(step="crash", version=1, params={"index": index})


def parts_of(index: int, tensor_numel: int = 64 * 1024) -> dict[str, Any]:
    """Deterministic parts of artifact ``index``: every writer of one index produces the same bytes."""
    generator = torch.Generator().manual_seed(index)
    images = torch.rand(3, 3, 16, 16, generator=generator)
    return {
        "weights": {"w": torch.randn(tensor_numel, generator=generator), "b": torch.arange(index + 1.0)},
        "table": pa.table({"index": [index] * 100, "value": torch.rand(100, generator=generator).tolist()}),
        "images": ImageSet.from_tensors(images, {"label": [index, index + 1, index + 2]}),
        "info": {"index": index, "note": "crash test"},
    }


def open_store(url: str, env: dict[str, str], cache_dir: str) -> ArtifactStore:
    os.environ.update(env)  # the forkserver may have started before the S3 fixture set the environment
    return ArtifactStore(url, cache_dir=cache_dir, retry=RetryPolicy(base_delay=0.01))


def write_until_killed(url: str, env: dict[str, str], cache_dir: str, ready: Any) -> None:
    """Put artifacts 0, 1, 2, ... (skipping existing ones) until the test kills this process."""
    store = open_store(url, env, cache_dir)
    # Ready once the store has answered a first request: on S3 that one builds the client (its session, the service's
    # model), which on a busy machine outlasted the test's whole window for the kill, and the kill then landed before
    # any put began.
    store.exists(key_of(0))
    ready.set()
    for index in itertools.count():
        key = key_of(index)
        if not store.exists(key):
            store.put(key, parts_of(index), step="crash", params={"index": index})


def put_same_key(url: str, env: dict[str, str], cache_dir: str, barrier: Any, results: Any, index: int) -> None:
    """Wait for every racer, then put artifact ``index``; report (raced, digest) or the error."""
    try:
        store = open_store(url, env, cache_dir)
        parts = parts_of(index, tensor_numel=256 * 1024)  # a megabyte, so that the writers overlap
        barrier.wait(timeout=60)
        raced = not store.exists(key_of(index))
        ref = store.put(key_of(index), parts, step="crash", params={"index": index})
        results.put((raced, ref.digest))
    except Exception as error:  # reported to the test, which fails on it
        results.put(("error", f"{type(error).__name__}: {error}"))
