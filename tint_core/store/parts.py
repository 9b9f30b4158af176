"""Codecs for the parts of an artifact: tensors (safetensors), tables and image sets (Parquet), small JSON.

Nothing here unpickles: decoding uses safetensors, pyarrow's Parquet reader and ``json`` only. torch is imported only
when tensors or images are actually encoded or decoded, so listing or verifying a store stays light.
"""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

if TYPE_CHECKING:
    import torch

PartKind = Literal["tensors", "table", "images", "json"]
PART_KINDS: tuple[str, ...] = get_args(PartKind)
EXTENSIONS: dict[str, str] = {"tensors": "safetensors", "table": "parquet", "images": "parquet", "json": "json"}
PART_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
PNG_COLUMN = "png"


def check_part_name(name: object) -> str:
    """Return ``name`` if it can name a part (letters, digits, ``_.-``; 1-100 characters), else raise ValueError."""
    if not isinstance(name, str) or not PART_NAME.fullmatch(name):
        raise ValueError(f"part name {name!r} must match {PART_NAME.pattern}")
    return name


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Images stored as PNG bytes, with one metadata row per image (Parquet columns ``png`` + metadata).

    Attributes:
        png: the encoded images.
        metadata: a table with ``len(png)`` rows (possibly no columns); a mapping of equal-length columns is converted.
    """

    png: Sequence[bytes]
    metadata: pa.Table | Mapping[str, Sequence[Any]] | None = None

    def __post_init__(self) -> None:
        png = tuple(self.png)
        if not all(isinstance(item, bytes) for item in png):
            raise ValueError("ImageSet.png must hold bytes; use ImageSet.from_tensors for image tensors")
        metadata = self.metadata
        if metadata is None:
            metadata = pa.table({PNG_COLUMN: pa.array(png, pa.binary())}).drop_columns([PNG_COLUMN])
        elif not isinstance(metadata, pa.Table):
            metadata = pa.table({str(name): list(column) for name, column in metadata.items()})
        if PNG_COLUMN in metadata.column_names:
            raise ValueError(f"metadata column name {PNG_COLUMN!r} is reserved for the images")
        if metadata.num_rows != len(png):
            raise ValueError(f"metadata has {metadata.num_rows} rows for {len(png)} images")
        object.__setattr__(self, "png", png)
        object.__setattr__(self, "metadata", metadata)

    @classmethod
    def from_tensors(
        cls,
        images: torch.Tensor | Sequence[torch.Tensor],
        metadata: pa.Table | Mapping[str, Sequence[Any]] | None = None,
    ) -> ImageSet:
        """Encode float images in [0, 1] — a (B, 3, H, W) batch or (3, H, W) tensors of any size — as 8-bit PNG."""
        from tint_core.images import encode_png

        return cls([encode_png(image) for image in images], metadata)

    def __len__(self) -> int:
        return len(self.png)

    def __repr__(self) -> str:
        return f"ImageSet({len(self)} images, metadata columns {self.metadata.column_names})"

    def tensor(self, index: int) -> torch.Tensor:
        """Decode image ``index`` to a float (3, H, W) tensor in [0, 1]."""
        from tint_core.images import decode_png

        return decode_png(self.png[index])

    def tensors(self) -> list[torch.Tensor]:
        """Decode every image (sizes may differ, so a list rather than a batch)."""
        return [self.tensor(index) for index in range(len(self))]


def _is_tensor(value: object) -> bool:
    torch = sys.modules.get("torch")  # a value cannot be a tensor unless torch is already loaded
    return torch is not None and isinstance(value, torch.Tensor)


def part_kind(name: str, value: object) -> str:
    """The kind a value is stored as; raise TypeError for values no codec takes.

    A non-empty mapping whose values are all tensors → ``tensors``; a ``pyarrow.Table`` → ``table``; an ``ImageSet``
    → ``images``; anything else (JSON data or a pydantic model) → ``json``.
    """
    if isinstance(value, ImageSet):
        return "images"
    if isinstance(value, pa.Table):
        return "table"
    if _is_tensor(value):
        raise TypeError(f"part {name!r}: store tensors as a mapping, e.g. {{{name!r}: tensor}}")
    if isinstance(value, Mapping) and value:
        tensors = [_is_tensor(item) for item in value.values()]
        if all(tensors):
            return "tensors"
        if any(tensors):
            raise TypeError(f"part {name!r} mixes tensors and other values; split it into a tensors and a JSON part")
    return "json"


def encode_part(name: str, value: object) -> tuple[str, bytes]:
    """Encode a part value; returns ``(kind, bytes)``.

    Raises:
        TypeError: the value has no codec or is not JSON-serialisable; the message names the part.
    """
    kind = part_kind(name, value)
    if kind == "tensors":
        from safetensors.torch import save

        mapping: Mapping[str, torch.Tensor] = value  # type: ignore[assignment]
        tensors = {str(key): tensor.detach().cpu().contiguous() for key, tensor in mapping.items()}
        return kind, save(tensors)
    if kind == "table":
        return kind, _parquet_bytes(value)  # type: ignore[arg-type]
    if kind == "images":
        images: ImageSet = value  # type: ignore[assignment]
        table = images.metadata.add_column(0, PNG_COLUMN, pa.array(images.png, pa.binary()))
        # PNG is already compressed: a second codec over it costs time and saves nothing.
        compression = {column: "snappy" for column in table.column_names} | {PNG_COLUMN: "none"}
        return kind, _parquet_bytes(table, compression=compression)
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise TypeError(f"part {name!r} is not a tensor mapping, table, ImageSet or JSON data: {error}") from None
    return kind, text.encode("utf-8")


def _parquet_bytes(table: pa.Table, **options: Any) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    return sink.getvalue()


def decode_part(kind: str, data: bytes) -> Any:
    """Decode bytes written by ``encode_part``: tensors → ``dict[str, Tensor]``, table → ``pyarrow.Table``,
    images → ``ImageSet``, json → the JSON value."""
    if kind == "tensors":
        from safetensors.torch import load

        return load(data)
    if kind in ("table", "images"):
        table = pq.read_table(pa.BufferReader(data))
        if kind == "table":
            return table
        return ImageSet(table.column(PNG_COLUMN).to_pylist(), table.drop_columns([PNG_COLUMN]))
    if kind == "json":
        return json.loads(data.decode("utf-8"))
    raise ValueError(f"unknown part kind {kind!r}; known: {', '.join(PART_KINDS)}")
