"""Artifact keys: SHA-256 of the canonical JSON of what a step's output depends on.

Canonical JSON (see docs/store.md for the full list) makes the same logical inputs give the same bytes:

- mappings are written with sorted keys; ``int`` keys become strings, as JSON does; other key types are refused;
- tuples are lists; sets are refused (no order); bytes and tensors are refused (pass a digest of them instead);
- a float with an integral value below 2**53 is written as an integer (``1.0`` → ``1``, ``-0.0`` → ``0``), any
  other float as its shortest round-trip repr; NaN and ±inf are refused;
- pydantic models are dumped field by field (pydantic's JSON conventions for dates, enums, UUIDs...), enums become
  their values, numpy scalars their Python values;
- ``pathlib`` paths (including pydantic fields typed ``Path``) are normalised by ``normalize_path``; plain strings are
  never touched, since nothing says they are paths;
- strings are compared exactly (no Unicode normalisation).
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import posixpath
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import numpy as np
from pydantic import BaseModel
from pydantic_core import PydanticSerializationError, to_jsonable_python

KEY_SCHEMA = 1  # bump when the key document changes, so old and new keys never collide
_EXACT_FLOAT_INTEGERS = 2**53


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def is_digest(text: object) -> bool:
    """True when ``text`` is a 64-character lower-case hex string (a SHA-256 digest or an artifact key)."""
    return isinstance(text, str) and len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def normalize_path(path: str | os.PathLike[str]) -> str:
    """Spell a path one way: local paths absolute POSIX, URLs with a lower-case scheme; both lexically normalised.

    ``~`` is expanded, relative paths are made absolute against the current directory, ``.``, ``..``, repeated and
    trailing slashes are collapsed lexically (symlinks are not resolved: the result must not depend on what exists on
    this machine). ``file://`` URLs become local paths.
    """
    text = os.fspath(path)
    if "://" in text:
        scheme, rest = text.split("://", 1)
        scheme = scheme.lower()
        if scheme != "file":
            authority, _, tail = rest.partition("/")
            tail = posixpath.normpath("/" + tail).lstrip("/") if tail else ""
            return f"{scheme}://{authority}/{tail}".rstrip("/")
        text = rest
    absolute = os.path.abspath(os.path.expanduser(text))
    posix = PurePath(absolute).as_posix()
    return "/" + posix.lstrip("/")  # POSIX keeps a leading "//" as special; nothing here needs it


def canonicalize(value: Any, _where: str = "$") -> Any:
    """Turn ``value`` into plain JSON data following the canonical rules (see the module docstring).

    Raises:
        TypeError: a value has no canonical form (sets, bytes, tensors, unknown objects); the message names where.
        ValueError: a float is NaN or infinite.
    """
    if isinstance(value, enum.Enum):  # before str/int: mixin enums are instances of both
        return canonicalize(value.value, _where)
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{_where}: {value} has no canonical JSON form")
        return int(value) if value.is_integer() and abs(value) < _EXACT_FLOAT_INTEGERS else float(value)
    if isinstance(value, np.generic):
        return canonicalize(value.item(), _where)
    if isinstance(value, PurePath):
        return normalize_path(value)
    if isinstance(value, BaseModel):
        return canonicalize(value.model_dump(mode="python"), _where)
    if isinstance(value, Mapping):
        return {_canonical_dict_key(key, _where): canonicalize(item, f"{_where}.{key}") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonicalize(item, f"{_where}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        raise TypeError(f"{_where}: sets have no order; pass a sorted list")
    if isinstance(value, (bytes, bytearray, memoryview)) or hasattr(value, "__array__"):
        raise TypeError(f"{_where}: cannot use {type(value).__name__} data in a key; pass a SHA-256 digest of it")
    try:
        jsonable = to_jsonable_python(value)  # datetimes, UUIDs, decimals, dataclasses... as pydantic writes them
    except PydanticSerializationError:
        raise TypeError(f"{_where}: {type(value).__name__} has no canonical JSON form") from None
    return canonicalize(jsonable, _where)


def _canonical_dict_key(key: object, where: str) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)
    raise TypeError(f"{where}: mapping keys must be strings, got {type(key).__name__} {key!r}")


def canonical_json(value: Any) -> str:
    """Canonical JSON text of ``value``: canonicalised, sorted keys, no whitespace, UTF-8 characters kept."""
    return json.dumps(canonicalize(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def input_digest(value: object, name: str = "input") -> str:
    """The digest an input contributes to a key: a SHA-256 hex string, or anything with a ``digest`` (an ArtifactRef).

    Raises:
        ValueError: the value is not a SHA-256 hex digest.
    """
    digest = getattr(value, "digest", value)
    if isinstance(digest, str) and is_digest(digest.lower()):
        return digest.lower()
    raise ValueError(f"input {name!r} must be a SHA-256 hex digest or an ArtifactRef, got {value!r}")


def artifact_key(
    *,
    step: str,
    version: str | int,
    params: Any = None,
    inputs: Mapping[str, object] | None = None,
    backbone: Any = None,
) -> str:
    """Key of a step's output: SHA-256 of the canonical JSON of everything the output depends on.

    Args:
        step: the step's name, e.g. ``"textual_inversion"``.
        version: the step's code version; bump it when the step's output changes for the same inputs
            (``1`` and ``"1"`` are the same version).
        params: the step's parameters (a pydantic model, a mapping, or None).
        inputs: ``{input name: digest}``; a digest is a SHA-256 hex string or an ``ArtifactRef``.
        backbone: the diffusion backbone's identity (e.g. ``{"id": ..., "revision": ...}``), or None.

    Returns:
        A 64-character lower-case hex key.
    """
    if not isinstance(step, str) or not step.strip():
        raise ValueError(f"step must be a non-empty string, got {step!r}")
    if isinstance(version, bool) or not isinstance(version, (str, int)):
        raise ValueError(f"version must be a string or an integer, got {version!r}")
    digests = {str(name): input_digest(value, str(name)) for name, value in (inputs or {}).items()}
    document = {
        "schema": KEY_SCHEMA,
        "step": step,
        "version": str(version),
        "params": params,
        "inputs": digests,
        "backbone": backbone,
    }
    return sha256_hex(canonical_json(document).encode("utf-8"))
