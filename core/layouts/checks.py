"""The checks every file layout applies to what it writes and what it reads back.

Inputs: item shapes and dtypes, names a tool could split as paths, a fresh directory.
Outputs: one error wording for unreadable and misshapen files, so an operator sees the
same kind of message whichever vendor tool wrote them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kiln_lab.core.errors import ConfigError, DataError, ToolOutputError

Item = Mapping[str, np.ndarray]
"""One item to write: model input name -> integer array of shape (rows, seq_len)."""

SHOWN = 5
"""How many file names an error lists before it says "and N more"."""


def checked_item(
    index: int, item: Item, input_names: Sequence[str], dtype: str, *, per_sample: bool
) -> tuple[np.ndarray, ...]:
    """The item's arrays in input order, cast to ``dtype``, or a DataError saying
    which item and input break the layout's shape rules."""
    unknown = [name for name in item if name not in input_names]
    if unknown:
        raise DataError(
            f"item {index} has arrays for {unknown} that are not model inputs "
            f"({', '.join(input_names)})"
        )
    arrays = []
    for name in input_names:
        if name not in item:
            raise DataError(f"item {index} has no array for model input {name!r}")
        array = np.asarray(item[name])
        what = f"item {index} input {name!r} (shape {array.shape}, {array.dtype})"
        if not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
            raise DataError(f"{what} is not integer token data")
        if array.ndim != 2 or (per_sample and array.shape[0] != 1):
            rows = "1" if per_sample else "batch"
            raise DataError(f"{what} is not of shape ({rows}, seq_len)")
        if arrays and array.shape != arrays[0].shape:
            raise DataError(f"{what} differs from the item's other inputs")
        if dtype == "int32" and array.size:
            limits = np.iinfo(np.int32)
            if array.min() < limits.min or array.max() > limits.max:
                raise DataError(f"{what} holds values outside the int32 range")
        arrays.append(np.ascontiguousarray(array, dtype=dtype))
    return tuple(arrays)


def array_names(input_names: Sequence[str], keys: str) -> tuple[str, ...]:
    """The names arrays (and per-input directories) get in the files: model input names
    or input_0, input_1, ...; refused if a tool would mis-split them as paths."""
    if not input_names:
        raise ConfigError("no model input names to write")
    if len(set(input_names)) != len(input_names):
        raise ConfigError(f"model input names repeat: {list(input_names)}")
    for name in input_names:
        if not name or name in (".", "..") or any(c in name for c in "/\\,\n"):
            raise ConfigError(
                f"model input name {name!r} cannot name a file or array",
                hint="input names must not be empty or contain / \\ , or a newline",
            )
    if keys == "indexed":
        return tuple(f"input_{j}" for j in range(len(input_names)))
    return tuple(input_names)


def fresh_directory(directory: Path) -> Path:
    folder = directory.absolute()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise DataError(
            f"{folder} is not a new or empty directory",
            path=folder,
            hint="write the tool's inputs into a fresh directory: tools that list their "
            "input folder would take leftover files as samples",
        )
    if any(c in str(folder) for c in ",\n"):
        raise ConfigError(
            f"{folder} contains a comma or newline, which the tool would split its input list on",
            hint="use a work directory without commas",
        )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shaped(path: Path, array: np.ndarray, shape: tuple[int, ...] | None) -> np.ndarray:
    if shape is not None:
        wanted = math.prod(shape)
        if array.size != wanted:
            raise ToolOutputError(
                f"{path.name} holds {array.size} values (shape {array.shape}); expected "
                f"shape {tuple(shape)}, {wanted} values",
                path=path,
                hint="the compiled model's output differs from what Kiln expects: check "
                "the profile's batch size, sequence length and which output is the logits",
            )
        array = array.reshape(shape)
    try:
        return np.ascontiguousarray(array, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ToolOutputError(
            f"{path.name} holds {array.dtype} data, not numbers: {exc}", path=path
        ) from exc


def unreadable(path: Path, what: str, exc: BaseException) -> ToolOutputError:
    """The error for an output file that cannot be decoded (truncated, wrong format)."""
    return ToolOutputError(
        f"{path.name} could not be read as {what}: {type(exc).__name__}: {exc}",
        path=path,
        hint="the file is truncated or in another format: the tool may have been stopped "
        "while writing it, or the profile's output format does not match the tool's flags",
    )


def listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def span(names: Sequence[str]) -> str:
    if not names:
        return "nothing"
    return names[0] if len(names) == 1 else f"{names[0]} ... {names[-1]}"


def load_guarded(path: Path, what: str, loader: Any) -> Any:
    """``loader(path)``, with any decoding failure turned into :func:`unreadable`."""
    try:
        return loader(path)
    except ToolOutputError:
        raise
    except Exception as exc:  # any failure to decode is the file's fault, named as such
        raise unreadable(path, what, exc) from exc
