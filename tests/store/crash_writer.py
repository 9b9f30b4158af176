"""Writer processes for the crash and concurrency tests (imported by the forkserver, so keep it importable alone)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Mapping
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


def on_writing(store: ArtifactStore, call: Callable[[], None]) -> None:
    """Have ``store`` call ``call`` each time a put begins writing its parts (after encoding them)."""
    write_many = store._backend.write_many

    def calling_first(files: Mapping[str, bytes]) -> None:
        call()
        write_many(files)

    store._backend.write_many = calling_first


def write_until_killed(url: str, env: dict[str, str], cache_dir: str, writing: Any) -> None:
    """Put artifacts 0, 1, 2, ... (skipping existing ones) until the test kills this process.

    ``writing`` is set as the first put begins writing to the store: the test's window for the kill starts there.
    Before that a kill cannot leave anything behind, and setting it earlier let the window run out on S3 while this
    writer was still asking which artifacts already exist (one request per artifact of the earlier trials, slow on a
    busy machine): the kills then landed before any put.
    """
    store = open_store(url, env, cache_dir)
    on_writing(store, writing.set)
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
