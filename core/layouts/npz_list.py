"""VastAI's layout: one ``.npz`` per sample, a data list of their paths, one ``.npz`` out.

Read in Vastai/VastModelZOO, ``nlp/named_entity_recognition/``:

- ``common/utils/sequence2npz.py`` (and ``gen_datalist.py``) write sample ``i`` as
  ``test_{i}.npz`` with int32 arrays keyed ``input_0``, ``input_1``, ... of shape
  ``(seq_len,)`` (``np.fromfile`` of one sample: no batch axis), and
  ``npz_datalist.txt`` with one path per line.
- ``common/vsx/python/vsx_ner.py --data_list L --save_dir D`` loads each listed file,
  feeds its arrays in archive order (``inputs.items()``) as int32, and saves the
  output of line ``i`` as ``D/str(i).zfill(6).npz`` with key ``output_0``;
  ``common/utils/run_torchscript.py`` does the same on the host (adding the batch axis
  itself with ``unsqueeze(0)``), and ``bert/README.md`` step 6 runs
  ``vamp ... --datalist npz_datalist.txt --path_output DIR`` for the same result.
- ``common/eval/people_daily_eval.py`` lists the result directory, sorts it, reads
  ``output_0`` and reshapes it to ``(256, 7)``: the output's stored shape is not fixed
  (with or without the batch axis), so pass ``shape`` to :meth:`read_outputs`.

Kiln writes ``samples/000000.npz`` ... (zero-padded, unlike ``test_{i}.npz``, so even a
lexical sort keeps order), with the arrays in input order, and an absolute-path
``npz_datalist.txt``; it reads ``{i:06d}.npz`` back by name for data-list line ``i``.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import ClassVar

import numpy as np

from kiln_lab.core.errors import ToolOutputError
from kiln_lab.core.layouts.base import Layout
from kiln_lab.core.layouts.checks import load_guarded

END_OF_ZIP = b"PK\x05\x06"
"""A zip file's end-of-central-directory record: the last thing written, 22 bytes
from the end of an archive without a comment (as ``np.savez`` writes them)."""


class NpzListLayout(Layout):
    name = "npz-list"
    per_sample = True
    tool = "vamp / vsx"
    data_list: ClassVar[str] = "npz_datalist.txt"
    samples: ClassVar[str] = "samples"
    pattern: ClassVar[re.Pattern[str]] = re.compile(r"(\d{6,})\.npz")

    def _write(
        self,
        directory: Path,
        items: list[tuple[np.ndarray, ...]],
        names: tuple[str, ...],
        file_format: str,
    ) -> tuple[str, list[list[str]]]:
        folder = directory / self.samples
        folder.mkdir()
        lines, files = [], []
        for index, arrays in enumerate(items):
            path = folder / f"{index:06d}.npz"
            # The sources store one sample without its batch axis: (seq_len,).
            _save_npz(
                path, [(name, array.reshape(-1)) for name, array in zip(names, arrays, strict=True)]
            )
            lines.append(str(path))
            files.append([f"{self.samples}/{path.name}"])
        data_list = directory / self.data_list
        data_list.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return str(data_list), files

    def _output_name(self, index: int, key: str | None, file_format: str) -> str:
        return f"{index:06d}.npz"

    def _load(
        self,
        path: Path,
        key: str | None,
        file_format: str,
        shape: tuple[int, ...] | None,
        raw_dtype: str,
    ) -> np.ndarray:
        def read(file: Path) -> np.ndarray:
            with np.load(file, allow_pickle=False) as archive:
                keys = list(archive.files)
                if not keys or (key is not None and key not in keys):
                    raise ToolOutputError(
                        f"{file.name} has no array {key or '(none at all)'!r}; "
                        f"it holds {keys or 'nothing'}",
                        path=file,
                        hint="set the profile's infer.outputs.key to the array holding "
                        "the logits (the VastAI tools write output_0)",
                    )
                return archive[key or keys[0]]

        return load_guarded(path, "an .npz archive", read)

    def _complete(
        self,
        path: Path,
        size: int,
        file_format: str,
        shape: tuple[int, ...] | None,
        raw_dtype: str,
    ) -> bool:
        if size < 22:
            return False
        with open(path, "rb") as file:
            file.seek(size - 22)
            return file.read(4) == END_OF_ZIP


def _save_npz(path: Path, arrays: list[tuple[str, np.ndarray]]) -> None:
    """What ``np.savez`` writes (an uncompressed zip of ``name.npy`` members, in order),
    without passing names as keyword arguments: an input called ``file`` would clash."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays:
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
