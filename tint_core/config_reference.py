"""The configuration reference (``docs/configuration.md``), rendered from the pydantic models themselves.

``python -m tint_core.config_reference`` prints it; ``--write`` writes ``docs/configuration.md``. A test checks that
the committed file is up to date, so the reference cannot drift from the code.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import itertools
import json
import re
import textwrap
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined, to_jsonable_python

HEADER = "Generated from the pydantic models by `python -m tint_core.config_reference`; do not edit by hand."
INTRO = (
    "Every configuration is a YAML file whose keys are the fields below; nested sections are nested mappings "
    "(`generator.specialization.backbone.source` is `source` under `backbone` under `specialization` under "
    "`generator`). Fields left out keep their defaults; an unknown field or a value outside its constraints is an "
    "error naming the file and the dotted field. Defaults are written as JSON, which is also YAML (`null` for None). "
    "`[]` in a dotted name stands for any item of a list, `<key>` for any key of a mapping."
)
DOCS_PATH = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


@dataclass(frozen=True)
class TopLevel:
    """A configuration that is a whole YAML file, and the command that reads it."""

    model: type[BaseModel]
    usage: str


@dataclass
class _Section:
    model: type[BaseModel]
    used_at: list[tuple[str, str]] = field(default_factory=list)  # (top-level title, dotted path)


def top_level_configs() -> tuple[TopLevel, ...]:
    """The configurations documented, with how each is used (imported late: the pipeline pulls in torch)."""
    from tint_core.pipeline.config import BenchmarkConfig, DistillAppConfig, TrainBackboneConfig

    return (
        TopLevel(BenchmarkConfig, "`tint benchmark CONFIG.yaml [--set KEY=VALUE]…` (the `benchmark` flow's "
                                  "parameter; `tint demo` runs its embedded defaults). Examples: `examples/demo.yaml`, `examples/sd15-gpu.yaml`."),
        TopLevel(DistillAppConfig, "`tint distill SUPPORTS OUTPUT --config CONFIG.yaml` (the `distill` flow's "
                                   "parameter). "
                                   "Example: `examples/distill-app.yaml`."),
        TopLevel(TrainBackboneConfig, "`python -m flows.train_backbone [CONFIG.yaml] [--output FOLDER]` (the "
                                      "`train-backbone` flow's parameter)."),
    )  # fmt: skip


# --- types --------------------------------------------------------------------------------------------------------


def _strip_annotated(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """Every pydantic model named anywhere in a type (``Optional``, ``list``, ``dict``, unions, ``Annotated``)."""
    annotation = _strip_annotated(annotation)
    if _is_model(annotation):
        yield annotation
    elif get_origin(annotation) is not Literal:
        for argument in get_args(annotation):
            yield from _models_in(argument)


def _children(annotation: Any, prefix: str) -> Iterator[tuple[type[BaseModel], str, bool]]:
    """``(model, dotted prefix of its fields, direct)`` for each model a field holds: ``prefix.`` for a model or an
    optional one, ``prefix[].`` for a list of them, ``prefix.<key>.`` for a mapping; ``direct`` when the field's value
    is the model itself (so its default instance gives the defaults below it)."""
    annotation = _strip_annotated(annotation)
    if _is_model(annotation):
        yield annotation, f"{prefix}.", True
    elif _is_union(annotation):
        for argument in get_args(annotation):
            yield from _children(argument, prefix)
    elif get_origin(annotation) in (list, tuple, set, frozenset, Sequence):
        for argument in get_args(annotation):
            for model, path, _ in _children(argument, f"{prefix}[]"):
                yield model, path, False
    elif get_origin(annotation) is dict:
        for model, path, _ in _children(get_args(annotation)[-1], f"{prefix}.<key>"):
            yield model, path, False


def _is_leaf(annotation: Any) -> bool:
    """A field shown in the index of dotted names: it holds no model, or may hold something else than a model."""
    annotation = _strip_annotated(annotation)
    if _is_model(annotation):
        return False
    if _is_union(annotation):
        return any(_is_leaf(argument) for argument in get_args(annotation) if argument is not type(None))
    return True


class _Namer:
    """Section titles and anchors: the class name, with its package added where two documented classes share it."""

    def __init__(self, models: Sequence[type[BaseModel]]):
        counts: dict[str, int] = {}
        for model in models:
            counts[model.__name__] = counts.get(model.__name__, 0) + 1
        self.titles = {}
        for model in models:
            title = model.__name__
            if counts[title] > 1:
                package = model.__module__.removeprefix("tint_core.").split(".")[0]
                title = f"{model.__name__} ({package})"
            self.titles[model] = title

    def link(self, model: type[BaseModel]) -> str:
        title = self.titles.get(model)
        if title is None:  # not documented here (should not happen for models reached by the walk)
            return f"`{model.__name__}`"
        name, _, package = title.partition(" ")
        return f"[`{name}`{' ' + package if package else ''}](#{slug(title)})"


def slug(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation but ``-``/``_`` dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def _type_text(annotation: Any) -> str:
    """A type as Python spells it, Literal values as JSON (``"a" | "b"``); no models inside."""
    annotation = _strip_annotated(annotation)
    if annotation is type(None):
        return "None"
    if annotation is Any:
        return "Any"
    origin = get_origin(annotation)
    if origin is Literal:
        return " | ".join(json.dumps(value) for value in get_args(annotation))
    if _is_union(annotation):
        return " | ".join(_type_text(argument) for argument in get_args(annotation))
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(_type_text(argument) for argument in get_args(annotation))}]"
    return getattr(annotation, "__name__", str(annotation).removeprefix("typing."))


def render_type(annotation: Any, namer: _Namer) -> str:
    """Markdown for a field's type: one code span, or model links joined by the rest of the type's syntax."""
    annotation = _strip_annotated(annotation)
    if not any(True for _ in _models_in(annotation)):
        return f"`{_type_text(annotation)}`"
    if _is_model(annotation):
        return namer.link(annotation)
    if _is_union(annotation):
        return " | ".join(render_type(argument, namer) for argument in get_args(annotation))
    origin = get_origin(annotation)
    name = getattr(origin, "__name__", str(origin))
    return f"{name}[{', '.join(render_type(argument, namer) for argument in get_args(annotation))}]"


# --- defaults, constraints, descriptions ---------------------------------------------------------------------------


def render_value(value: Any) -> str:
    """A value as compact JSON (which is also YAML): stable for models, paths and enums alike."""
    return json.dumps(to_jsonable_python(value), ensure_ascii=False, separators=(", ", ": "))


def _default_value(info: FieldInfo) -> Any:
    """The field's default (the factory's product for ``default_factory``), or ``PydanticUndefined`` if required."""
    return info.get_default(call_default_factory=True, validated_data={})


def _model_changes(value: BaseModel) -> list[tuple[str, Any]]:
    """Dotted fields in which a default instance differs from its class's defaults (all of them if it has none)."""
    try:
        base = type(value)().model_dump(mode="json")
    except ValidationError:  # required fields: nothing to compare with
        base = {}
    changes: list[tuple[str, Any]] = []

    def diff(current: Any, reference: Any, path: str) -> None:
        if isinstance(current, dict) and isinstance(reference, dict) and current and reference:
            for key, item in current.items():
                diff(item, reference.get(key, PydanticUndefined), f"{path}{key}.")
        elif current != reference:
            changes.append((path.rstrip("."), current))

    diff(value.model_dump(mode="json"), base, "")
    return changes


def render_default(info: FieldInfo, namer: _Namer) -> str:
    """Markdown for a field's default: required, a JSON value, or a model's section and what differs from it."""
    value = _default_value(info)
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, BaseModel):
        changes = _model_changes(value)
        text = f"see {namer.link(type(value))}"
        if changes:
            text += "; here " + ", ".join(f"`{path}: {render_value(item)}`" for path, item in changes)
        return text
    return f"`{render_value(value)}`"


_BOUNDS = ((annotated_types.Ge, "ge", "≥"), (annotated_types.Gt, "gt", ">"), (annotated_types.Le, "le", "≤"),
           (annotated_types.Lt, "lt", "<"))  # fmt: skip


def render_constraints(info: FieldInfo) -> str:
    """Bounds and lengths from the field's pydantic metadata, e.g. ``≥ 1, ≤ 100``."""
    parts: list[str] = []
    for item in info.metadata:
        for kind, attribute, symbol in _BOUNDS:
            if isinstance(item, kind):
                parts.append(f"{symbol} {render_value(getattr(item, attribute))}")
        if isinstance(item, annotated_types.MinLen):
            parts.append(f"length ≥ {item.min_length}")
        elif isinstance(item, annotated_types.MaxLen):
            parts.append(f"length ≤ {item.max_length}")
        elif isinstance(item, annotated_types.MultipleOf):
            parts.append(f"multiple of {render_value(item.multiple_of)}")
        pattern = getattr(item, "pattern", None)
        if isinstance(pattern, str):
            parts.append(f"matches `{pattern}`")
    return ", ".join(parts)


def _attribute_docstrings(model: type[BaseModel]) -> dict[str, str]:
    """``name: type = ...`` followed by a string literal in the class body: that string, by field name."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(model)))
    except (OSError, TypeError, SyntaxError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    found = {}
    for statement, following in itertools.pairwise(body):
        if (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
                and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)):  # fmt: skip
            found[statement.target.id] = inspect.cleandoc(following.value.value)
    return found


def _description(name: str, info: FieldInfo, docstrings: dict[str, str]) -> str:
    text = info.description or docstrings.get(name, "")
    return " ".join(text.split())


def _model_doc(model: type[BaseModel]) -> str:
    doc = model.__dict__.get("__doc__")
    return " ".join(inspect.cleandoc(doc).split()) if doc else ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return lines


# --- the walk ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexEntry:
    """One leaf field reached from a top-level configuration."""

    path: str
    model: type[BaseModel]
    default: str


def _walk(model: type[BaseModel], prefix: str, value: BaseModel | None, optional: str | None, top: str,
          sections: dict[type[BaseModel], _Section], index: list[IndexEntry]) -> None:  # fmt: skip
    """Collect the sections (in order of first use) and the leaf fields of ``model``.

    Args:
        value: the instance of ``model`` at this place by default; None when there is none (an optional model that
            is None by default, a list or mapping item): then the class's defaults apply.
        optional: dotted name of the optional field above that is None by default, for the index's note.
    """
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        current = getattr(value, name) if value is not None else _default_value(info)
        if _is_leaf(info.annotation):
            if current is PydanticUndefined:
                default = "required"
            else:
                default = f"`{render_value(current)}`" + (f" once `{optional}` is set" if optional else "")
            index.append(IndexEntry(path, model, default))
        for child, child_prefix, direct in _children(info.annotation, path):
            sections.setdefault(child, _Section(child)).used_at.append((top, child_prefix.rstrip(".")))
            child_value = current if direct and isinstance(current, child) else None
            child_optional = path if direct and current is None and optional is None else optional
            _walk(child, child_prefix, child_value, child_optional, top, sections, index)


def config_reference(top_levels: Sequence[TopLevel] | None = None) -> str:
    """The Markdown reference of every field of the top-level configurations and of each model nested in them.

    Args:
        top_levels: the configurations to document (default: the benchmark, the distill application and backbone
            training); each nested model gets one section, linked from every field that uses it.

    Returns:
        The Markdown text, deterministic (what ``docs/configuration.md`` holds).
    """
    top_levels = tuple(top_levels) if top_levels is not None else top_level_configs()
    sections: dict[type[BaseModel], _Section] = {}
    indexes: dict[type[BaseModel], list[IndexEntry]] = {}
    for top in top_levels:
        index: list[IndexEntry] = []
        try:
            default: BaseModel | None = top.model()
        except ValidationError:  # required fields: the defaults come from each field
            default = None
        _walk(top.model, "", default, None, top.model.__name__, sections, index)
        indexes[top.model] = index
    nested = [model for model in sections if model not in indexes]
    namer = _Namer([top.model for top in top_levels] + nested)

    lines = ["# Configuration reference", "", HEADER, ""]
    lines += [INTRO, ""]
    lines += ["| configuration | used by |", "|---|---|"]
    lines += [f"| {namer.link(top.model)} | {_cell(top.usage)} |" for top in top_levels]
    lines.append("")

    for top in top_levels:
        title = namer.titles[top.model]
        lines += [f"## {title}", ""]
        doc = _model_doc(top.model)
        if doc:
            lines += [doc, ""]
        lines += [f"Used by {top.usage}", ""]
        lines += _field_table(top.model, namer)
        lines += ["", f"Every setting of `{title}` by its dotted YAML name, with its default here:", ""]
        rows = [[f"[`{entry.path}`](#{slug(namer.titles[entry.model])})", entry.default]
                for entry in indexes[top.model]]  # fmt: skip
        lines += _table(["YAML name", "default"], rows)
        lines.append("")

    lines += ["## Nested sections", ""]
    for model in nested:
        section = sections[model]
        lines += [f"### {namer.titles[model]}", ""]
        doc = _model_doc(model)
        if doc:
            lines += [doc, ""]
        lines += [f"Python: `{model.__module__}.{model.__qualname__}`.", ""]
        by_top: dict[str, list[str]] = {}
        for top, path in section.used_at:
            if path not in by_top.setdefault(top, []):
                by_top[top].append(path)
        used = "; ".join(f"{top} " + ", ".join(f"`{path}`" for path in paths) for top, paths in by_top.items())
        lines += [f"Used at: {used}.", ""]
        lines += _field_table(model, namer)
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _field_table(model: type[BaseModel], namer: _Namer) -> list[str]:
    docstrings = _attribute_docstrings(model)
    rows = []
    for name, info in model.model_fields.items():
        rows.append([f"`{name}`", render_type(info.annotation, namer), render_default(info, namer),
                     render_constraints(info), _description(name, info, docstrings)])  # fmt: skip
    return _table(["field", "type", "default", "constraints", "description"], rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the reference, or write it to ``docs/configuration.md`` with ``--write``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help=f"write {DOCS_PATH.name} in docs/ instead of printing")
    args = parser.parse_args(argv)
    text = config_reference()
    if args.write:
        DOCS_PATH.write_text(text)
        print(f"wrote {DOCS_PATH}")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
