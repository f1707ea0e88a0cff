"""YAML at the edge, typed frozen configs inside.

Model cards and profiles are YAML files that operators edit by hand, so a typo must
come back as a sentence that names the file, the line, the key and the nearest valid
key. Validation itself is pydantic's (frozen models that forbid unknown keys); this
module adds the YAML positions and the suggestions.
"""

from __future__ import annotations

import difflib
import re
import reprlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from kiln_lab.core.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxstring, _SHORT.maxother = 2, 4, 60, 60
"""A found value is quoted in the message, cut short: one bad key must not flood a screen."""


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _line_at(text: str, mark: Any) -> int:
    """The 1-based line of a YAML mark as an editor counts it (LF, CRLF or CR).

    PyYAML also breaks lines at U+0085, U+2028 and U+2029, which editors show inside a
    line, so its own ``mark.line`` can point past the end of the file.
    """
    return len(_LINE_BREAK.findall(text, 0, mark.index)) + 1


class FrozenConfig(BaseModel):
    """Base for every file-backed config: immutable, strict about unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


def _line_of(node: yaml.Node | None, loc: tuple, text: str) -> int | None:
    """The 1-based line of the deepest part of ``loc`` found in the YAML document.

    Walks down the error's own path only, so aliases (even cyclic ones, or a "billion
    laughs" document) cost nothing; a part that is not a YAML key (a pydantic validator's
    name) stops the walk at the line found so far.
    """
    line = None
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(part):
                    child, line = value_node, _line_at(text, key_node.start_mark)
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
            line = _line_at(text, child.start_mark)
        if child is None:
            break
        node = child
    return line


def _mark_of(exc: BaseException) -> Any:
    """Where in the text PyYAML was when it raised a plain ``ValueError`` (no mark of its
    own): the node being built, else the scanner's position; None if neither is found."""
    found = None
    tb = exc.__traceback__
    while tb is not None:
        local = tb.tb_frame.f_locals
        node, owner = local.get("node"), local.get("self")
        if isinstance(node, yaml.Node):
            found = node.start_mark
        elif hasattr(owner, "get_mark") and hasattr(owner, "peek"):
            found = owner.get_mark()
        tb = tb.tb_next
    return found


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
    shown = _SHORT.repr(value) if not isinstance(value, dict) else "a mapping"
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
            line=_line_at(text, mark) if mark else None,
            hint="check indentation and quoting near that line",
        ) from None
    except RecursionError:
        raise ConfigError(
            "not valid YAML: nested too deeply",
            path=path,
            hint="a model card or profile needs only a few levels of nesting",
        ) from None
    except (ValueError, OverflowError) as exc:
        # PyYAML's constructors raise these for a value that looks like a date or a
        # number but is not one (``2001-13-45``): name the file and line, not a traceback.
        raise ConfigError(
            f"not valid YAML: a value could not be read ({exc})",
            path=path,
            line=_line_at(text, mark) if (mark := _mark_of(exc)) else None,
            hint="quote values that only look like dates or numbers; check \\U escapes "
            "in double-quoted strings",
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
        # A typo shows up twice (unknown key + missing key): report the typo, it has the fix.
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        first = errors[0]
        message, hint = _describe(first, model)
        line = _line_of(node, tuple(first["loc"]), text)
        more = len(exc.errors()) - 1
        if more:
            message += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise ConfigError(message, path=path, line=line, hint=hint) from None
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        # pydantic turns only ValueError/AssertionError from validators into its own
        # error; anything else a validator trips over (a regular expression too large
        # to compile, a cycle of YAML aliases) must still name the file.
        raise ConfigError(
            f"a value could not be checked ({type(exc).__name__}: {str(exc)[:200]})",
            path=path,
            hint="look for an unusual value: a huge number, a self-referencing alias (&a ... *a)",
        ) from None


def find_config(
    name_or_path: str, directory: Path | Sequence[Path], what: str, listing: str
) -> Path:
    """A config file by path, or by name in ``directory``; an unknown name suggests one.

    ``directory`` may be several, searched in order (built-in cards, then the user's);
    ``what`` names the kind in the error ("model card", "profile"); ``listing`` is the
    command that lists them.
    """
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") and candidate.exists():
        return candidate
    directories = [directory] if isinstance(directory, Path) else list(directory)
    for folder in directories:
        path = folder / f"{name_or_path}.yaml"
        if path.exists():
            return path
    # The name inside a file is what listings show; it may differ from the file's name.
    named: dict[str, Path] = {}
    files = [file for folder in directories for file in sorted(folder.glob("*.yaml"))]
    for file in files:
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            named.setdefault(data["name"], file)
    if name_or_path in named:
        return named[name_or_path]
    directory = directories[0]
    known = sorted({p.stem for p in files} | set(named))
    close = difflib.get_close_matches(name_or_path, known, n=1)
    maybe = f"did you mean '{close[0]}'? " if close else ""
    raise ConfigError(
        f"no {what} named {name_or_path!r}",
        path=directory,
        hint=f"{maybe}known: {', '.join(known)} (`{listing}` lists them)",
    )
