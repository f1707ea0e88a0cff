"""YAML at the edge, typed frozen configs inside.

Model cards and profiles are YAML files that operators edit by hand, so a typo must
come back as a sentence that names the file, the line, the key and the nearest valid
key. Validation itself is pydantic's (frozen models that forbid unknown keys); this
module adds the YAML positions and the suggestions.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from core.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class FrozenConfig(BaseModel):
    """Base for every file-backed config: immutable, strict about unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


def _positions(node: yaml.Node, prefix: tuple = ()) -> dict[tuple, int]:
    """Map every key path in a YAML document to its 1-based line number."""
    lines: dict[tuple, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = (*prefix, key_node.value)
            lines[path] = key_node.start_mark.line + 1
            lines.update(_positions(value_node, path))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = (*prefix, index)
            lines[path] = item.start_mark.line + 1
            lines.update(_positions(item, path))
    return lines


def _model_at(model: type[BaseModel], path: tuple) -> type[BaseModel] | None:
    """The pydantic model that owns the last key of ``path`` (for suggestions)."""
    current: Any = model
    for part in path[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = _inner_model(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _describe(error: dict[str, Any], model: type[BaseModel]) -> tuple[str, str | None]:
    path = tuple(error["loc"])
    dotted = ".".join(str(p) for p in path) or "(top level)"
    if error["type"] == "extra_forbidden":
        owner = _model_at(model, path)
        valid = sorted(owner.model_fields) if owner else []
        close = difflib.get_close_matches(str(path[-1]), valid, n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'?" if close else None
        if valid:
            listing = f"valid keys here: {', '.join(valid)}"
            hint = f"{hint} ({listing})" if hint else listing
        return f"unknown key '{dotted}'", hint
    if error["type"] == "missing":
        return f"missing required key '{dotted}'", "add it (see the examples in the docs)"
    value = error.get("input")
    shown = repr(value) if not isinstance(value, dict) else "a mapping"
    return f"key '{dotted}': {error['msg']} (found {shown})", None


def load_config(path: Path | str, model: type[M], *, extra: dict[str, Any] | None = None) -> M:
    """Parse a YAML file into ``model``; every failure is a ``ConfigError`` with a location."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", path=path, hint="check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read file ({exc})", path=path) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"not valid YAML: {problem}",
            path=path,
            line=mark.line + 1 if mark else None,
            hint="check indentation and quoting near that line",
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a mapping of keys at the top level, found {type(data).__name__}",
            path=path,
            line=1,
        )
    if extra:
        data = {**extra, **data}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = _positions(node) if node is not None else {}
        # A typo shows up twice (unknown key + missing key): report the typo, it has the fix.
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        first = errors[0]
        message, hint = _describe(first, model)
        loc = tuple(first["loc"])
        line = None
        while loc and line is None:
            line = lines.get(loc)
            loc = loc[:-1]
        more = len(exc.errors()) - 1
        if more:
            message += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise ConfigError(message, path=path, line=line, hint=hint) from None
