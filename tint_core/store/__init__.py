"""Content-addressed artifact store on a local folder or S3: crash-safe, verified, shared across runs and machines.

Typical use in a pipeline step::

    key = artifact_key(step="ti", version=1, params=cfg, inputs={"supports": supports_ref}, backbone=backbone_id)
    store = ArtifactStore("s3://bucket/tint")
    if not store.exists(key):
        store.put(key, {"embeddings": {"<cls0>": tensor}, "report": {...}}, step="ti", params=cfg)
    ref = store.ref(key)           # small, JSON-serialisable: pass it to the next task
    tensors = store.get(ref)["embeddings"]

See docs/store.md. Nothing here imports diffusers or Prefect; torch is imported only to encode or decode tensors.
"""

from tint_core.store.cache import PartCache
from tint_core.store.errors import (
    ArtifactNotFoundError,
    CorruptArtifactError,
    DigestMismatchError,
    StoreAccessError,
    StoreError,
    StoreFullError,
    StoreRetryError,
    out_of_space,
)
from tint_core.store.keys import artifact_key, canonical_json, canonicalize, normalize_path, sha256_hex
from tint_core.store.manifest import ArtifactRef, Manifest, PartEntry
from tint_core.store.parts import ImageSet
from tint_core.store.retry import RetryPolicy
from tint_core.store.store import Artifact, ArtifactStore, GcReport, VerifyReport

__all__ = [
    "Artifact",
    "ArtifactNotFoundError",
    "ArtifactRef",
    "ArtifactStore",
    "CorruptArtifactError",
    "DigestMismatchError",
    "GcReport",
    "ImageSet",
    "Manifest",
    "PartCache",
    "PartEntry",
    "RetryPolicy",
    "StoreAccessError",
    "StoreError",
    "StoreFullError",
    "StoreRetryError",
    "VerifyReport",
    "artifact_key",
    "canonical_json",
    "canonicalize",
    "normalize_path",
    "out_of_space",
    "sha256_hex",
]
