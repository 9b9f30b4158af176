"""The manifest that makes an artifact visible, and the small reference tasks pass to each other."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tint_core.store.keys import canonical_json, is_digest, sha256_hex
from tint_core.store.parts import EXTENSIONS, PART_NAME, PartKind

MANIFEST_FORMAT = "tint-artifact/1"
WRITER_ID = r"[A-Za-z0-9_-]{1,64}"


def _digest(value: str) -> str:
    if not is_digest(value):
        raise ValueError(f"expected a 64-character lower-case hex SHA-256, got {value!r}")
    return value


class PartEntry(BaseModel):
    """One stored part: how it is encoded, its size in bytes and the SHA-256 of its bytes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: PartKind
    size: int = Field(ge=0)
    sha256: str

    _check_sha256 = field_validator("sha256")(_digest)


def artifact_digest(parts: Mapping[str, PartEntry]) -> str:
    """Content digest of an artifact: SHA-256 of the canonical JSON of ``{part name: part SHA-256}``.

    It depends on the parts' bytes only (not on the key, the writer or the time), so it can serve as an input digest
    of downstream keys: a step recomputed into identical bytes does not invalidate what follows it.
    """
    return sha256_hex(canonical_json({name: entry.sha256 for name, entry in parts.items()}).encode("utf-8"))


class Manifest(BaseModel):
    """The last file of an artifact: lists every part with its digest, plus the step, parameters and creation time.

    Parts live at ``<key folder>/<writer>/<name>.<extension>``; the writer folder is private to the process that wrote
    them, so concurrent writers of one key never touch each other's files.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["tint-artifact/1"] = MANIFEST_FORMAT
    key: str
    digest: str
    step: str
    params: Any = None
    inputs: dict[str, str] = Field(default_factory=dict)
    created: datetime
    seconds: float | None = Field(default=None, ge=0)  # compute time the writer spent making it (not in the digest)
    writer: str = Field(pattern=f"^{WRITER_ID}$")
    parts: dict[str, PartEntry]

    _check_digests = field_validator("key", "digest")(_digest)

    @field_validator("parts")
    @classmethod
    def _check_part_names(cls, parts: dict[str, PartEntry]) -> dict[str, PartEntry]:
        for name in parts:
            if not PART_NAME.fullmatch(name):
                raise ValueError(f"part name {name!r} must match {PART_NAME.pattern}")
        return parts

    @model_validator(mode="after")
    def _check_digest_matches_parts(self) -> Manifest:
        if self.digest != artifact_digest(self.parts):
            raise ValueError("manifest digest does not match its parts")
        return self

    @property
    def size(self) -> int:
        """Total bytes of the parts."""
        return sum(entry.size for entry in self.parts.values())

    def part_path(self, name: str) -> str:
        """Path of a part relative to the key's folder."""
        return f"{self.writer}/{name}.{EXTENSIONS[self.parts[name].kind]}"

    def to_bytes(self) -> bytes:
        """Serialise as indented JSON (readable with ``cat``)."""
        return self.model_dump_json(indent=1).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Parse and validate; raises pydantic's ValidationError on anything malformed."""
        return cls.model_validate_json(data)


class ArtifactRef(BaseModel):
    """A small, JSON-serialisable pointer to an artifact, passed between pipeline tasks instead of data.

    ``digest`` is the artifact's content digest, usable directly in ``artifact_key(inputs={...: ref})``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: str = Field(description="display URL of the store (never holds credentials)")
    key: str
    digest: str

    _check_digests = field_validator("key", "digest")(_digest)

    @property
    def uri(self) -> str:
        """Where the artifact lives, for humans: ``<store>/artifacts/<key>``."""
        return f"{self.store}/artifacts/{self.key}"
