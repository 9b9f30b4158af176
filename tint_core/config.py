"""Base class for every configuration: a pydantic model that also reads and writes YAML.

The same object is the library argument, the YAML file and (later) the Prefect flow parameter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict

C = TypeVar("C", bound="TintConfig")


class TintConfig(BaseModel):
    """Frozen, strict pydantic model: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    @classmethod
    def from_yaml(cls: type[C], path: str | Path) -> C:
        """Load from a YAML file whose top level maps field names to values."""
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
        return cls.model_validate(data)

    def to_yaml(self, path: str | Path | None = None) -> str:
        """Dump as YAML (every field, defaults included); write to ``path`` when given."""
        text = yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    def updated(self: C, **changes: Any) -> C:
        """A validated copy with some fields changed (``model_copy`` does not validate)."""
        return type(self).model_validate({**self.model_dump(), **changes})
