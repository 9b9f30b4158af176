"""Seeds for independent random streams, derived from a root seed and names.

A stream's seed depends only on its own identity (e.g. seed, class name, image index), never on
what else runs in the same batch, so batched and serial runs draw the same numbers.
"""

from __future__ import annotations

import hashlib

import torch


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed from any sequence of ints and strings (stable across runs and platforms)."""
    text = "\x1f".join(f"{type(part).__name__}:{part}" for part in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def generator(*parts: int | str) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``derive_seed(*parts)``."""
    return torch.Generator().manual_seed(derive_seed(*parts))
