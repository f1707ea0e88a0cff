"""A compiled artifact run by its vendor's own inference tool, over files.

This is how the vendor guides measure accuracy on the device: write the evaluation
inputs in the tool's layout (:mod:`kiln_lab.core.layouts`), run the tool, read its
outputs back by file name and score them. Each call hands the tool a group of batches
(``infer.batches_per_call``), so its start-up is paid once per group and the live
figures move group by group; the evaluate stage's checkpoints are per batch, so a
resumed run sends only the batches that have no predictions yet.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kiln_lab.core.errors import ToolOutputError
from kiln_lab.core.paths import cache_dir
from kiln_lab.core.runtimes.base import Batch, CompiledModel

if TYPE_CHECKING:
    from kiln_lab.core.profiles import Profile

log = logging.getLogger(__name__)


class ToolInferModel(CompiledModel):
    """Logits from the profile's ``infer`` command; batches are padded to the compiled
    shape where the profile has one, and the padding is dropped from what comes back."""

    def __init__(
        self,
        profile: Profile,
        artifact: Path,
        *,
        input_names: tuple[str, ...],
        batch_size: int,
        seq_len: int,
        precision: str,
        token_level: bool,
        num_labels: int,
        model_name: str = "",
        output_dir: Path | None = None,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> None:
        from kiln_lab.core.layouts import get_layout

        toolchain = profile.toolchain
        assert toolchain is not None and toolchain.infer is not None
        self.profile = profile
        self.step = toolchain.infer
        self.layout = get_layout(self.step.inputs.layout)
        self.artifact = Path(artifact)
        self.output_dir = output_dir
        self.input_names = input_names
        self.batch_size, self.seq_len = batch_size, seq_len
        self.static = profile.static_shapes
        self.precision = precision
        self.token_level = token_level
        self.num_labels = num_labels
        self.model_name = model_name
        self.cancelled = cancelled
        self.batches_per_call = self.step.batches_per_call
        self.tool = _tool_name(self.step.command, self.layout.tool)
        self.description = f"{profile.name}: {self.tool} over {self.layout.name} files"

    def run(self, batch: Batch) -> np.ndarray:
        return self.run_many([batch])[0]

    def run_many(self, batches: Sequence[Batch]) -> list[np.ndarray]:
        items: list[dict[str, np.ndarray]] = []
        spans: list[tuple[int, int, int, int]] = []  # first item, items, rows, length
        for batch in batches:
            rows, length = next(iter(batch.values())).shape
            if (self.static or self.step.inputs.full_length) and length > self.seq_len:
                raise ToolOutputError(
                    f"a batch of length {length} exceeds the compiled sequence length "
                    f"{self.seq_len}",
                    hint=f"run with --seq-len {self.seq_len} or compile for a longer one",
                )
            parts = self._items(batch, rows, length)
            spans.append((len(items), len(parts), rows, length))
            items.extend(parts)
        outputs = self._call(items)
        for index, output in enumerate(outputs):
            if output.ndim < 1 + self.token_level or output.shape[-1] != self.num_labels:
                raise ToolOutputError(
                    f"{self.tool}'s output for item {index} has shape {output.shape}; "
                    f"expected {'(..., seq_len, ' if self.token_level else '(..., '}"
                    f"{self.num_labels}) logits",
                    hint="check the profile's infer.outputs.key: it must name the logits",
                )
        logits = []
        for first, count, rows, length in spans:
            got = outputs[first : first + count]
            joined = np.concatenate(
                [o.reshape(-1, *o.shape[-(1 + self.token_level) :]) for o in got]
            )
            joined = joined[:rows]
            if self.token_level:
                joined = joined[:, :length]
            logits.append(np.ascontiguousarray(joined, dtype=np.float32))
        return logits

    def _items(self, batch: Batch, rows: int, length: int) -> list[dict[str, np.ndarray]]:
        """What one batch becomes in the layout: one item per sample, or per compiled
        batch (padded to the compiled shape, larger batches in chunks)."""
        full = self.static or self.step.inputs.full_length
        width = self.seq_len if full else length
        per_item = self.batch_size if self.static else rows
        size = 1 if self.layout.per_sample else per_item
        items = []
        for start in range(0, rows, size):
            count = min(size, rows - start)
            item = {}
            for name in self.input_names:
                full = np.zeros((size, width), dtype=np.int64)
                full[:count, :length] = batch[name][start : start + count]
                item[name] = full
            items.append(item)
        return items

    def _call(self, items: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
        from kiln_lab.core.toolchain import run_infer_tool

        if not items:
            return []
        inputs, outputs = self.step.inputs, self.step.outputs
        work = Path(tempfile.mkdtemp(prefix="infer-", dir=cache_dir("tool-work")))
        try:
            infer_input = self.layout.write_inputs(
                work / "inputs",
                items,
                self.input_names,
                dtype=inputs.dtype,
                keys=inputs.keys,
                file_format=inputs.file_format,
            )
            infer_output = self.layout.output_path(work / "outputs")
            run_infer_tool(
                self.profile,
                self.artifact,
                infer_input=infer_input,
                infer_output=infer_output,
                work_dir=work,
                batch_size=self.batch_size,
                seq_len=self.seq_len,
                precision=self.precision,
                input_names=self.input_names,
                model_name=self.model_name,
                output_dir=self.output_dir,
                cancelled=self.cancelled,
            )
            shape = None
            if outputs.file_format == "bin":  # raw values: the shape must come from here
                rows, width = next(iter(items[0].values())).shape
                shape = (
                    (rows, width, self.num_labels) if self.token_level else (rows, self.num_labels)
                )
            return self.layout.read_outputs(
                work / "outputs",
                len(items),
                key=outputs.key,
                file_format=outputs.file_format,
                shape=shape,
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def settings(self) -> dict[str, Any]:
        return {
            "runtime": "external",
            "tool": self.tool,
            "evaluate_with": "infer",
            "layout": self.layout.name,
            "batches_per_call": self.batches_per_call,
            "static_shape": [self.batch_size, self.seq_len] if self.static else None,
        }


def _tool_name(command: Sequence[object], layout_tool: str) -> str:
    """What to call the tool: the program, or the module Kiln's Python runs (``-m``);
    for inline Python (``-c``), the tool the layout is written for."""
    first = str(command[0])
    python = first == "{python}" or Path(first).name.startswith("python")
    if not python or len(command) < 2:
        return Path(first).name
    if str(command[1]) == "-m" and len(command) > 2:
        return str(command[2]).rsplit(".", 1)[-1]
    return layout_tool
