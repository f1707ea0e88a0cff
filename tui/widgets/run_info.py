"""A past or running run's choices and outcome, for the run screen's left column."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from kiln_lab.core.result import RunResult
from kiln_lab.tui import format as fmt
from kiln_lab.tui.state import RunView


class RunInfo(Static):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Run"
        self._drawn: tuple | None = None

    def show(self, view: RunView) -> None:
        drawn = (
            view.run_id,
            view.status,
            view.batch_size,
            view.examples,
            view.result is not None,
            view.build,
        )
        if drawn == self._drawn:
            return
        self._drawn = drawn
        config, result = view.config, view.result or RunResult()
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="dim", no_wrap=True, min_width=9)
        grid.add_column(no_wrap=True, overflow="ellipsis")
        grid.add_row("run", view.run_id)
        grid.add_row("status", Text(view.status, style=fmt.STATUS_STYLE.get(view.status, "")))
        grid.add_row("model", str(config.get("model", fmt.DASH)))
        dataset = result.dataset or config.get("dataset_label") or fmt.DASH
        grid.add_row("data", f"{dataset}")
        profile, precision, chosen = view.build
        grid.add_row("profile", f"{profile or fmt.DASH}{' (auto)' if chosen else ''}")
        grid.add_row("precision", precision or fmt.DASH)
        grid.add_row("batch", str(view.batch_size or fmt.DASH))
        seq = result.seq_len or view.stages["resolve"].summary.get("seq_len")
        grid.add_row("seq len", str(seq or fmt.DASH))
        if view.examples is not None:
            grid.add_row("examples", f"{view.examples:,}")
        if result.runtime:
            grid.add_row("runtime", str(result.runtime))
        if result.parity is not None and result.parity.to_dict():
            grid.add_row("parity", str(result.parity.status or "").upper())
        self.update(grid, layout=False)
