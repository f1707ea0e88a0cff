"""NVIDIA Polygraphy's layout: one JSON feed dict per batch in, one RunResults per batch out.

Read in Polygraphy 0.53.6 (``polygraphy run --help`` and its source):

- ``--load-inputs PATH``: a JSON file (a list of feed dicts, or one feed dict) or a
  directory whose ``*.json`` files are each one iteration, taken in lexical order
  (``polygraphy/json/serde.py`` ``list_iteration_files``, ``iterate_json_list``;
  ``comparator/data_loader.py`` ``StreamingDataLoader``). A feed dict maps input names
  to arrays, so arrays are always keyed by model input name.
- ``--save-outputs DIR`` (an extensionless path; with an extension it is one file)
  writes iteration ``i`` as ``DIR/{i:010d}.json`` (``IterationWriter``,
  ``ITERATION_FILE_INDEX_WIDTH = 10``) into a new or empty directory: a single-iteration
  ``RunResults``, i.e. ``lst = [(runner name, [IterationResult])]``, the
  IterationResult mapping output name -> array (``comparator/struct.py``). The file
  ends with ``"polygraphy_class": "RunResults"}``, which is what :meth:`ready` checks.
- ``polygraphy.json.save_json`` / ``load_json`` encode arrays as base64 ``.npy`` bytes;
  Kiln writes and reads the files only through them, imported when needed, so Kiln
  imports without Polygraphy installed.

Kiln writes ``feeds/{i:010d}.json`` (the tool's own width, so its lexical order is item
order) and reads ``{i:010d}.json`` back by name, taking the first runner's output
(``key``, or the first output).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from kiln_lab.core.errors import ConfigError, ToolchainMissing, ToolOutputError
from kiln_lab.core.layouts.base import Layout
from kiln_lab.core.layouts.checks import load_guarded

WIDTH = 10
"""polygraphy.json.serde.ITERATION_FILE_INDEX_WIDTH."""
TAIL = b'"RunResults"'


class PolygraphyJsonLayout(Layout):
    name = "polygraphy-json"
    per_sample = False
    tool = "polygraphy run"
    key_styles = ("names",)
    feeds: ClassVar[str] = "feeds"
    pattern: ClassVar[re.Pattern[str]] = re.compile(rf"(\d{{{WIDTH},}})\.json")

    def _write(
        self,
        directory: Path,
        items: list[tuple[np.ndarray, ...]],
        names: tuple[str, ...],
        file_format: str,
    ) -> tuple[str, list[list[str]]]:
        save_json = _polygraphy_json().save_json
        folder = directory / self.feeds
        folder.mkdir()
        files = []
        for index, arrays in enumerate(items):
            name = f"{index:0{WIDTH}d}.json"
            save_json(dict(zip(names, arrays, strict=True)), str(folder / name))
            files.append([f"{self.feeds}/{name}"])
        return str(folder), files

    def output_path(self, directory: Path) -> str:
        folder = Path(directory).absolute()
        if folder.suffix:
            raise ConfigError(
                f"{folder} has a file extension, so polygraphy would save one JSON file "
                "there instead of a directory of per-iteration files",
                hint="use an output directory name without a dot",
            )
        return str(folder)

    def _output_name(self, index: int, key: str | None, file_format: str) -> str:
        return f"{index:0{WIDTH}d}.json"

    def _load(
        self,
        path: Path,
        key: str | None,
        file_format: str,
        shape: tuple[int, ...] | None,
        raw_dtype: str,
    ) -> np.ndarray:
        load_json = _polygraphy_json().load_json
        results = load_guarded(path, "Polygraphy RunResults JSON", lambda p: load_json(str(p)))
        runners: list[Any] = getattr(results, "lst", None) or []
        if not runners or len(runners[0][1]) != 1:
            raise ToolOutputError(
                f"{path.name} is not one iteration's RunResults "
                f"(it holds {type(results).__name__} with {len(runners)} runners)",
                path=path,
                hint="polygraphy --save-outputs must be a directory: one file per iteration",
            )
        runner, iterations = runners[0]
        outputs = iterations[0]
        names = list(outputs.keys())
        if not names or (key is not None and key not in names):
            raise ToolOutputError(
                f"{path.name} has no output {key or '(none at all)'!r} from {runner}; "
                f"it has {names or 'none'}",
                path=path,
                hint="set the profile's infer.outputs.key to the model's logits output",
            )
        return np.asarray(outputs[key or names[0]])

    def _complete(
        self,
        path: Path,
        size: int,
        file_format: str,
        shape: tuple[int, ...] | None,
        raw_dtype: str,
    ) -> bool:
        with open(path, "rb") as file:
            file.seek(max(0, size - 64))
            tail = file.read().rstrip()
        return tail.endswith(b"}") and TAIL in tail


def _polygraphy_json() -> Any:
    """``polygraphy.json``, imported only when this layout is used."""
    try:
        import polygraphy.json as polygraphy_json
    except ImportError as exc:
        raise ToolchainMissing(
            "the polygraphy-json layout needs the polygraphy package",
            hint="pip install polygraphy",
        ) from exc
    return polygraphy_json
