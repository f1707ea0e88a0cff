"""What every vendor file layout shares: write inputs, name outputs, read them back.

A vendor's inference tool evaluates by files: Kiln writes the inputs in the tool's
layout, the tool writes one output file per input file, and Kiln reads them back. The
tools name their outputs by index (``000000.npz``, ``000000_0.npy``,
``0000000000.json``), and some vendor recipes write unpadded names and then sort them
lexically, which silently pairs sample 10 with sample 2's labels. So every layout here:

- writes zero-padded names, plus a ``manifest.json`` saying which files make up each
  item (so a run directory explains itself, and a resume can check what it has);
- reads item ``i``'s output from the one file name the tool gives item ``i``, never
  from a directory listing's order;
- refuses a missing, extra, truncated or misshapen output with a
  :class:`~kiln_lab.core.errors.ToolOutputError` that names the file, because a shifted
  or zero-filled output would otherwise be scored as a (wrong) accuracy figure.

The subclasses (one module per layout) say only what differs: file names, the format
of each file, and the cheap "is this file complete yet" check behind :meth:`ready`.
"""

from __future__ import annotations

import json
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from kiln_lab.core.errors import ConfigError, DataError, ToolOutputError
from kiln_lab.core.layouts.checks import (
    Item,
    array_names,
    checked_item,
    fresh_directory,
    listed,
    shaped,
    span,
)

INPUT_DTYPES = ("int32", "int64")
KEY_STYLES = ("names", "indexed")
MANIFEST = "manifest.json"


class Layout(ABC):
    """One vendor tool's file layout; stateless, so the registry holds one instance."""

    name: ClassVar[str]
    """The name profiles use (``infer.inputs.layout``)."""
    per_sample: ClassVar[bool]
    """True: one file per sample (VastAI); False: one file per compiled batch."""
    tool: ClassVar[str]
    """The vendor program(s) that read and write this layout, for messages."""
    fixed_shape: ClassVar[bool] = False
    """Whether every item must have the same shape (the tool sizes files by item 0)."""
    key_styles: ClassVar[tuple[str, ...]] = KEY_STYLES
    """The array naming styles the tool can read."""
    file_formats: ClassVar[tuple[str, ...]] = ()
    pattern: ClassVar[re.Pattern[str]]
    """Output file names; group 1 is the item index."""
    """The per-file formats the caller may choose; empty: fixed by the tool, and the
    ``file_format`` arguments are ignored."""

    # -- writing ---------------------------------------------------------------------

    def write_inputs(
        self,
        directory: Path,
        items: Sequence[Item],
        input_names: Sequence[str],
        *,
        dtype: str = "int64",
        keys: str = "names",
        file_format: str = "npy",
    ) -> str:
        """Write ``items`` in order, zero-padded, plus ``manifest.json``, into ``directory``
        (new or empty: tools that list their input folder would take leftovers as samples).

        Each item maps every model input name to an integer array: one sample of shape
        (1, seq_len) for per-sample layouts, one padded batch (batch, seq_len) otherwise.
        ``keys``: "names" keys arrays by model input name, "indexed" by input_0, input_1,
        ... in ``input_names`` order (VastAI). ``dtype``: int32 or int64, the dtype the
        compiled model takes. Returns the value for the tool's input placeholder.
        """
        if dtype not in INPUT_DTYPES:
            raise ConfigError(f"input dtype {dtype!r} is not one of {', '.join(INPUT_DTYPES)}")
        if keys not in self.key_styles:
            raise ConfigError(
                f"the {self.name} layout cannot name arrays {keys!r}",
                hint=f"{self.tool} reads arrays named: {', '.join(self.key_styles)}",
            )
        self._check_format(file_format)
        names = array_names(input_names, keys)
        if not items:
            raise DataError(f"nothing to write for {self.tool}: no items")
        arrays = [
            checked_item(i, item, input_names, dtype, per_sample=self.per_sample)
            for i, item in enumerate(items)
        ]
        first = arrays[0][0].shape
        odd = next((i for i, item in enumerate(arrays) if item[0].shape != first), None)
        if self.fixed_shape and odd is not None:
            raise DataError(
                f"item {odd} has shape {arrays[odd][0].shape}, item 0 {first}: "
                f"{self.tool} sizes every file by the first, so all must match",
                hint="pad every batch to the compiled (batch, seq_len)",
            )
        folder = fresh_directory(Path(directory))
        tool_input, files = self._write(folder, arrays, names, file_format)
        manifest = {
            "layout": self.name,
            "count": len(arrays),
            "input_names": list(input_names),
            "array_names": list(names),
            "dtype": dtype,
            "file_format": file_format if self.file_formats else None,
            "tool_input": tool_input,
            "files": files,
            "shapes": [list(item[0].shape) for item in arrays],
        }
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        return tool_input

    @abstractmethod
    def _write(
        self,
        directory: Path,
        items: list[tuple[np.ndarray, ...]],
        names: tuple[str, ...],
        file_format: str,
    ) -> tuple[str, list[list[str]]]:
        """Write checked items (arrays in input order); return the tool's input value and
        each item's files relative to ``directory``."""

    # -- reading ---------------------------------------------------------------------

    def output_path(self, directory: Path) -> str:
        """The value for the tool's output placeholder: the directory it writes into."""
        return str(Path(directory).absolute())

    def output_folder(self, directory: Path) -> Path:
        """Where the output files land, given the directory passed to :meth:`output_path`."""
        return Path(directory).absolute()

    def read_outputs(
        self,
        directory: Path,
        count: int,
        *,
        key: str | None = None,
        file_format: str = "npy",
        shape: tuple[int, ...] | None = None,
        raw_dtype: str = "float32",
    ) -> list[np.ndarray]:
        """Item ``i``'s output (the logits) as float32 for ``i`` in ``range(count)``, each
        read from the file name the tool gives item ``i``; reshaped to ``shape`` if given.

        ``key`` picks the output (npz key, Polygraphy output name, ais_bench output
        index); None: the first. ``raw_dtype`` is the element type of raw ``.bin`` files.
        Raises ToolOutputError on a missing, extra, unreadable or wrongly sized file.
        """
        self._check_format(file_format)
        folder = self.output_folder(Path(directory))
        expected = [self._output_name(i, key, file_format) for i in range(count)]
        if not folder.is_dir():
            raise ToolOutputError(
                f"{self.tool} wrote no output directory {folder} "
                f"(expected {count} files, {span(expected)})",
                path=folder,
                hint=self._missing_hint(),
            )
        present = {entry.name for entry in os.scandir(folder)}
        missing = [name for name in expected if name not in present]
        if missing:
            raise ToolOutputError(
                f"{len(missing)} of {count} output files missing from {folder}: "
                f"{listed(missing)} (found {len(present)} files)",
                path=folder / missing[0],
                hint=self._missing_hint(),
            )
        extra = sorted(
            name
            for name in present
            if (owner := self._owner(name, file_format)) is None or owner >= count
        )
        if extra:
            raise ToolOutputError(
                f"unexpected files in {folder}: {listed(extra)}; "
                f"{self.tool} should write only {span(expected)}",
                path=folder / extra[0],
                hint="Kiln maps outputs to samples by file name and does not guess: "
                "these are left from another run or named differently by this tool "
                "version. Use a fresh output directory, or check the profile's infer step",
            )
        outputs = []
        for name in expected:
            path = folder / name
            array = self._load(path, key, file_format, shape, raw_dtype)
            outputs.append(shaped(path, array, shape))
        return outputs

    def ready(
        self,
        directory: Path,
        count: int,
        *,
        key: str | None = None,
        file_format: str = "npy",
        shape: tuple[int, ...] | None = None,
        raw_dtype: str = "float32",
    ) -> list[int]:
        """Indices of items whose output file is already complete, for live scoring while
        the tool works and for resume. Cheap: a stat and a few bytes per file, no decoding.
        A file the tool is still writing is simply not ready; :meth:`read_outputs` is
        what rejects a file that stays incomplete."""
        self._check_format(file_format)
        folder = self.output_folder(Path(directory))
        if not folder.is_dir():
            return []
        sizes = {entry.name: entry.stat().st_size for entry in os.scandir(folder)}
        done = []
        for index in range(count):
            name = self._output_name(index, key, file_format)
            size = sizes.get(name)
            if size and self._complete(folder / name, size, file_format, shape, raw_dtype):
                done.append(index)
        return done

    @abstractmethod
    def _output_name(self, index: int, key: str | None, file_format: str) -> str:
        """The file name the tool gives item ``index``'s output (``key``'s, if by file)."""

    def _owner(self, name: str, file_format: str) -> int | None:
        """The item index an output file of this name belongs to; None: not the tool's.

        ``pattern``'s first group is the index; the name must be exactly the one the tool
        gives that index (no extra zeros, the right suffix)."""
        match = self.pattern.fullmatch(name)
        if match is None or name != self._output_name(int(match[1]), None, file_format):
            return None
        return int(match[1])

    @abstractmethod
    def _load(
        self,
        path: Path,
        key: str | None,
        file_format: str,
        shape: tuple[int, ...] | None,
        raw_dtype: str,
    ) -> np.ndarray:
        """The chosen output array in ``path``; ToolOutputError if it cannot be read."""

    @abstractmethod
    def _complete(
        self,
        path: Path,
        size: int,
        file_format: str,
        shape: tuple[int, ...] | None,
        raw_dtype: str,
    ) -> bool:
        """Whether ``path`` (``size`` bytes, > 0) is completely written."""

    def _missing_hint(self) -> str:
        return (
            f"{self.tool} stopped before writing every output (see its log above), or "
            "the profile's infer command sends the outputs elsewhere"
        )

    # -- checks ----------------------------------------------------------------------

    def _check_format(self, file_format: str) -> None:
        if self.file_formats and file_format not in self.file_formats:
            raise ConfigError(
                f"the {self.name} layout has no file format {file_format!r}",
                hint=f"{self.tool} reads and writes: {', '.join(self.file_formats)}",
            )
