"""What a worker process keeps between pipeline steps: opened stores, loaded models and local copies of weights.

Consecutive steps on one worker reuse a loaded diffusion backbone or teacher instead of reloading a checkpoint.
Models are keyed by identity (checkpoint identity or weight-file content, device, precision), never by object, so a
changed checkpoint is never served from memory.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TypeVar

from tint_core.store import ArtifactRef, ArtifactStore, canonical_json
from tint_core.store.backends import display_url

logger = logging.getLogger("tint_core.pipeline")

T = TypeVar("T")
WEIGHTS_CACHE = "~/.cache/tint/weights"


class ModelCache:
    """A small least-recently-used cache of loaded models, safe to share between threads.

    Args:
        capacity: models kept at once; each may be gigabytes, so keep it small.
    """

    def __init__(self, capacity: int = 2):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._models: OrderedDict[Hashable, object] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0  # how many times a model was built (the cache missed)

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        """The model under ``key``, built by ``build()`` on first use (one build at a time)."""
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]  # type: ignore[return-value]
            model = build()
            self.loads += 1
            self._models[key] = model
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
            return model

    def clear(self) -> None:
        """Forget every model."""
        with self._lock:
            self._models.clear()


MODELS = ModelCache()
_STORES: dict[tuple[object, ...], ArtifactStore] = {}
_STORES_LOCK = threading.Lock()
_DIGESTS: dict[tuple[str, int, int], str] = {}


def open_store(url: str) -> ArtifactStore:
    """The store at ``url``, opened (and probed) once per process and AWS environment."""
    aws = tuple(sorted((name, value) for name, value in os.environ.items() if name.startswith("AWS_")))
    cache_key = (display_url(url), aws)
    with _STORES_LOCK:
        if cache_key not in _STORES:
            _STORES[cache_key] = ArtifactStore(url)
        return _STORES[cache_key]


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes, remembered per (path, size, modification time) so large weights hash once."""
    path = Path(path).expanduser().resolve()
    stat = path.stat()
    memo = (str(path), stat.st_size, stat.st_mtime_ns)
    if memo not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(2**22), b""):
                digest.update(block)
        _DIGESTS[memo] = digest.hexdigest()
    return _DIGESTS[memo]


def weights_identity(weights: str | None) -> str | None:
    """What a weights setting contributes to keys: the content digest of the file it names (None stays None).

    Raises:
        FileNotFoundError: the file is missing, or an ``hf-hub:`` repo is not in the local cache.
    """
    if weights is None:
        return None
    from tint_core.fewshot.backbones import resolve_weights

    return f"sha256:{file_digest(resolve_weights(weights))}"


def weights_file(store: ArtifactStore, ref: ArtifactRef, part: str = "weights") -> Path:
    """A local safetensors file holding a stored tensors part, written once per machine (named by its digest)."""
    artifact = store.get(ref)
    digest = artifact.manifest.parts[part].sha256
    path = Path(WEIGHTS_CACHE).expanduser() / f"{digest}.safetensors"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{uuid.uuid4().hex}.tmp")
        temporary.write_bytes(artifact.read_bytes(part))
        os.replace(temporary, path)  # complete or absent, even with concurrent writers
    return path


def config_identity(config: object) -> str:
    """A hashable identity of a configuration (canonical JSON), for model cache keys."""
    return canonical_json(config)
