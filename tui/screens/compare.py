"""Marked runs side by side, each figure with its difference from the first run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from kiln_lab.tui.compare import compare_rows
from kiln_lab.tui.widgets.title_bar import TitleBar

if TYPE_CHECKING:
    from kiln_lab.tui.app import KilnApp

HELP = """
The runs you marked, side by side, in the order you marked them. The first is the
baseline: accuracy figures show their difference from it in points (+ gains, − losses),
speed figures show the speed-up (×1.80 is 80% faster; for latency, lower is better so
×1.80 means 1.8 times shorter). Only figures measured side by side on this machine are
comparable: timings on shared machines vary by 5–15% from run to run.
"""


class CompareScreen(Screen[None]):
    SCREEN_TITLE = "Compare"
    HELP = HELP
    CSS_PATH = Path(__file__).with_name("runs.tcss")
    BINDINGS = [Binding("escape", "back", "Back")]

    def __init__(self, run_ids: list[str]) -> None:
        super().__init__(id="compare-screen")
        self.run_ids = run_ids
        self.records: list[Any] = []

    @property
    def kiln(self) -> KilnApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield TitleBar(id="title")
        yield DataTable(id="compare", cursor_type="row", zebra_stripes=True)
        yield Static(
            Text(
                "Δ and × are against the first column · timings vary 5–15% run to run", style="dim"
            ),
            id="runs-hint",
        )
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(TitleBar).show(self.SCREEN_TITLE, None, 0.0)
        self.load()

    @work(thread=True, exclusive=True, group="compare", exit_on_error=False)
    def load(self) -> None:
        from kiln_lab.core.errors import KilnError
        from kiln_lab.core.store import RunStore

        try:
            with RunStore(self.kiln.store_path) as store:
                records = [store.run(run_id) for run_id in self.run_ids]
        except KilnError as exc:
            self.app.call_from_thread(self.kiln.show_error, exc.to_dict())
            return
        self.app.call_from_thread(self.show_records, records)

    def show_records(self, records: list[Any]) -> None:
        self.records = records
        table = self.query_one(DataTable)
        table.clear(columns=True)
        table.add_column("", key="label")
        width = max(16, min(26, (self.app.size.width - 24) // max(1, len(records)) - 2))
        for i, record in enumerate(records):
            title = Text(record.id, style="bold")
            if i == 0:
                title.append(" (base)", style="dim")
            table.add_column(title, key=record.id, width=width)
        for label, cells in compare_rows(records):
            table.add_row(Text(label, style="bold"), *cells, key=label)

    def action_back(self) -> None:
        self.dismiss(None)
