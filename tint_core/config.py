"""Base class for every configuration: a pydantic model that also reads and writes YAML.

The same object is the library argument, the YAML file and the Prefect flow parameter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.fields import FieldInfo

C = TypeVar("C", bound="TintConfig")


class ConfigError(ValueError):
    """A configuration file that cannot be used; the one-line message names the file and the field."""


def describe_validation_error(error: ValidationError, source: str) -> str:
    """One line naming ``source``, the first offending field (dotted path) and what is wrong with it."""
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "(top level)"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown field {field!r}{more}"
    value = f" (got {first['input']!r})" if first["type"] != "missing" and not isinstance(first["input"], dict) else ""
    message = first["msg"].removeprefix("Value error, ")  # our validators' own messages need no label
    return f"{source}: field {field!r}: {message}{value}{more}"


# Words a field name abbreviates, spelled out in its title (the Prefect form's label).
_TITLE_WORDS = {"lr": "learning rate", "hflip": "horizontal flip", "kl": "KL", "vae": "VAE", "unet": "UNet",
                "ema": "EMA", "cuda": "CUDA", "num": "number of", "kwargs": "keyword arguments", "id": "ID"}  # fmt: skip


def field_title(name: str, field: FieldInfo | None = None) -> str:
    """A field's human title: the title of the configuration it holds (a section), else its name in sentence case
    with abbreviations spelled out (``hflip_probability`` → "Horizontal flip probability")."""
    annotation = field.annotation if field is not None else None
    held = [kind for kind in (get_args(annotation) or (annotation,)) if isinstance(kind, type)
            and issubclass(kind, BaseModel) and kind.model_config.get("title")]  # fmt: skip
    if len(held) == 1:
        return held[0].model_config["title"]
    text = " ".join(_TITLE_WORDS.get(word, word) for word in name.split("_"))
    return text[:1].upper() + text[1:]


class TintConfig(BaseModel):
    """Frozen, strict pydantic model: unknown keys are errors, not silently ignored. Subclasses carry a human
    ``title`` (the section's heading in the Prefect form); field titles come from :func:`field_title`."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, field_title_generator=field_title)

    @classmethod
    def from_yaml(cls: type[C], path: str | Path) -> C:
        """Load from a YAML file whose top level maps field names to values (missing fields keep their defaults).

        Raises:
            ConfigError: the file is missing, is not YAML, or a field is unknown or invalid (one line naming both).
        """
        try:
            text = Path(path).read_text()
        except OSError as error:
            raise ConfigError(f"{path}: cannot read configuration file: {error.strerror or error}") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
        return cls.from_mapping(data, source=str(path))

    @classmethod
    def from_mapping(cls: type[C], data: dict[str, Any], source: str = "configuration") -> C:
        """Validate a mapping; a ``ConfigError`` names ``source`` and the offending field."""
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise ConfigError(describe_validation_error(error, source)) from None

    def to_yaml(self, path: str | Path | None = None) -> str:
        """Dump as YAML (every field, defaults included); write to ``path`` when given."""
        text = yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    def with_overrides(self: C, assignments: list[str], source: str = "--set") -> C:
        """A validated copy with ``key.path=value`` assignments applied (values parsed as YAML: ``3``, ``cpu``,
        ``[a, b]``, ``null``).

        Raises:
            ConfigError: an assignment without ``=``, a path through a non-mapping, or an unknown or invalid field.
        """
        data = self.model_dump(mode="json")
        for assignment in assignments:
            path, equals, text = assignment.partition("=")
            if not equals or not path.strip():
                raise ConfigError(f"{source} {assignment!r}: expected KEY=VALUE, e.g. episodes.episodes=4")
            *parents, leaf = path.strip().split(".")
            node = data
            for depth, name in enumerate(parents):
                node = node.get(name) if isinstance(node, dict) else None
                if not isinstance(node, dict):
                    where = ".".join(parents[: depth + 1])
                    raise ConfigError(f"{source} {assignment!r}: {where!r} is not a section with fields")
            try:
                node[leaf] = yaml.safe_load(text)
            except yaml.YAMLError:
                node[leaf] = text  # an unparsable value stays a string; validation says whether that fits
        return type(self).from_mapping(data, source=f"{source} {' '.join(assignments)}")

    def updated(self: C, **changes: Any) -> C:
        """A validated copy with some fields changed (``model_copy`` does not validate)."""
        return type(self).model_validate({**self.model_dump(), **changes})
