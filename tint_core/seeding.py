"""Seeds for independent random streams, derived from a root seed and names.

A stream's seed depends only on its own identity (e.g. seed, class name, image index), never on
what else runs in the same batch, so batched and serial runs draw the same numbers.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator

import torch

_GLOBAL_RNG = threading.Lock()


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed from any sequence of ints and strings (stable across runs and platforms)."""
    text = "\x1f".join(f"{type(part).__name__}:{part}" for part in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def generator(*parts: int | str) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``derive_seed(*parts)``."""
    return torch.Generator().manual_seed(derive_seed(*parts))


@contextlib.contextmanager
def global_rng_seeded(seed: int) -> Iterator[None]:
    """Run a block with torch's global RNG seeded by ``seed``, one thread at a time, restoring its state afterwards.

    diffusers, transformers and timm initialise weights from the global RNG; the flows build models in several
    threads at once, so without the lock one thread's seeding would change another's weights.
    """
    with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
