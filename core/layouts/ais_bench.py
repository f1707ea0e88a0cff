"""Ascend ais_bench's layout: one directory per model input, one file per batch in each.

Read in Ascend/tools, ``ais-bench_workload/tool/ais_bench/ais_bench/infer/``:

- ``__main__.py``: ``--input dir0,dir1,...`` is split on commas, one directory per
  model input in input order; outputs go to ``{--output}/{--output_dirname}/`` (a
  timestamped folder without ``--output_dirname``, so profiles must pass it; Kiln
  reads ``{output}/outputs/``); ``--outfmt`` is NPY, BIN (the default) or TXT; a
  ``{output_dirname}_summary.json`` lands beside that folder, not in it.
- ``utils.py`` ``get_fileslist_from_dir``: a directory's ``.npy``/``.bin`` files,
  natural-sorted; ``get_file_content``: ``.npy`` through ``np.load``, ``.bin`` as raw
  bytes (so its dtype must be the model input's own).
- ``io_oprations.py``: the directories' lists are zipped by position; a file holding
  exactly one model input's bytes is one batch (``files_count_per_batch = 1``);
  ``save_tensors_to_file`` names output ``k`` of a batch
  ``os.path.basename(first input file).split('.')[0] + f"_{k}.{outfmt.lower()}"`` and
  writes it with ``np.save`` or ``ndarray.tofile``.

Kiln writes ``{input}/000000.npy`` (or ``.bin``) per batch at the compiled (batch,
seq_len) shape, every input directory with the same names, so output ``k`` of batch
``i`` is ``outputs/{i:06d}_{k}.{npy|bin}``, read back by that name.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import ClassVar

import numpy as np

from kiln_lab.core.errors import ConfigError, ToolOutputError
from kiln_lab.core.layouts.base import Layout
from kiln_lab.core.layouts.checks import load_guarded


class AisBenchLayout(Layout):
    name = "ais-bench"
    per_sample = False
    tool = "ais_bench"
    fixed_shape = True
    file_formats = ("npy", "bin")
    output_dirname: ClassVar[str] = "outputs"
    """What the profile's command passes as ``--output_dirname``."""
    pattern: ClassVar[re.Pattern[str]] = re.compile(r"(\d{6,})_(\d+)\.(npy|bin)")

    def _write(
        self,
        directory: Path,
        items: list[tuple[np.ndarray, ...]],
        names: tuple[str, ...],
        file_format: str,
    ) -> tuple[str, list[list[str]]]:
        for name in names:
            (directory / name).mkdir()
        files = []
        for index, arrays in enumerate(items):
            item_files = []
            for name, array in zip(names, arrays, strict=True):
                relative = f"{name}/{index:06d}.{file_format}"
                if file_format == "npy":
                    np.save(directory / relative, array, allow_pickle=False)
                else:
                    array.tofile(directory / relative)
                item_files.append(relative)
            files.append(item_files)
        return ",".join(str(directory / name) for name in names), files

    def output_folder(self, directory: Path) -> Path:
        return Path(directory).absolute() / self.output_dirname

    def _output_name(self, index: int, key: str | None, file_format: str) -> str:
        return f"{index:06d}_{_output_index(key)}.{file_format}"

    def _owner(self, name: str, file_format: str) -> int | None:
        match = self.pattern.fullmatch(name)
        if match is None or match[3] != file_format or match[1] != f"{int(match[1]):06d}":
            return None
        return int(match[1])

    def _missing_hint(self) -> str:
        return (
            f"ais_bench stopped before writing every output (see its log above), or the "
            f"profile's command lacks --output_dirname={self.output_dirname} or uses "
            f"another --outfmt than the profile's outputs.file_format"
        )

    def _load(
        self,
        path: Path,
        key: str | None,
        file_format: str,
        shape: tuple[int, ...] | None,
        raw_dtype: str,
    ) -> np.ndarray:
        if file_format == "npy":
            return load_guarded(path, "an .npy array", lambda p: np.load(p, allow_pickle=False))
        itemsize = np.dtype(raw_dtype).itemsize
        size = path.stat().st_size
        wanted = math.prod(shape) * itemsize if shape is not None else None
        if size % itemsize or (wanted is not None and size != wanted):
            expected = f"{wanted} bytes for shape {tuple(shape)}" if shape else "whole values"
            raise ToolOutputError(
                f"{path.name} is {size} bytes; expected {expected} of {raw_dtype}",
                path=path,
                hint="a raw .bin output is truncated, or the model's output shape or dtype "
                "differs from the profile's (batch, seq_len, labels) and raw dtype",
            )
        return load_guarded(path, f"raw {raw_dtype}", lambda p: np.fromfile(p, dtype=raw_dtype))

    def _complete(
        self,
        path: Path,
        size: int,
        file_format: str,
        shape: tuple[int, ...] | None,
        raw_dtype: str,
    ) -> bool:
        if file_format == "bin":
            itemsize = np.dtype(raw_dtype).itemsize
            return size == math.prod(shape) * itemsize if shape else size % itemsize == 0
        return size == _npy_size(path)


def _output_index(key: str | None) -> int:
    """ais_bench names outputs by position: key None is output 0, else "0", "1", ..."""
    if key is None:
        return 0
    if not str(key).isdigit():
        raise ConfigError(
            f"ais_bench output key {key!r} is not an output index",
            hint="ais_bench names output files by position: use 0 for the first output",
        )
    return int(key)


def _npy_size(path: Path) -> int | None:
    """The size an .npy file has once complete, from its header alone (None: no header)."""
    try:
        with open(path, "rb") as file:
            version = np.lib.format.read_magic(file)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(file)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(file)
            return file.tell() + math.prod(shape) * dtype.itemsize
    except (OSError, ValueError, EOFError):
        return None
