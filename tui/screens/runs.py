"""The run history: every run in the store; open one, or mark several and compare."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from kiln_lab.core.result import RunResult
from kiln_lab.tui import format as fmt
from kiln_lab.tui.widgets.title_bar import TitleBar

if TYPE_CHECKING:
    from kiln_lab.tui.app import KilnApp

HELP = """
Every run in the run store (KILN_HOME), newest first, refreshed while runs are going.

enter opens a run: its timeline, log and panes replayed from the store (live if it is
still going). space marks a run; with two or more marked, d compares them side by side:
accuracy, samples/s and latency, each with its difference from the first marked run,
like the fp32 / fp16 / int8 tables the vendor guides print by hand.
"""

COLUMNS = (
    "",
    "run",
    "status",
    "model",
    "prec",
    "metric",
    "samples/s",
    "p99 ms",
    "profile",
    "data",
    "started",
)
"""Most telling first: at 80 columns the figures are on screen, the rest scrolls."""


class RunsScreen(Screen[None]):
    SCREEN_TITLE = "Runs"
    HELP = HELP
    CSS_PATH = Path(__file__).with_name("runs.tcss")
    BINDINGS = [
        Binding("enter", "open_run", "Open", priority=True),
        Binding("space", "mark", "Mark"),
        Binding("d", "compare", "Compare marked"),
        Binding("c", "cancel_run", "Cancel run"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__(id="runs-screen")
        self.records: list[Any] = []
        self.marked: list[str] = []

    @property
    def kiln(self) -> KilnApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield TitleBar(id="title")
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static(id="runs-hint")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for column in COLUMNS:
            table.add_column(column, key=column or "mark")
        self.query_one(TitleBar).show(self.SCREEN_TITLE, None, 0.0)
        self._hint()
        self.load()
        self.set_interval(2.0, self._maybe_reload)

    def _maybe_reload(self) -> None:
        if any(not r.finished for r in self.records):
            self.load()

    @work(thread=True, exclusive=True, group="runs", exit_on_error=False)
    def load(self) -> None:
        from kiln_lab.core.errors import KilnError
        from kiln_lab.core.store import RunStore

        try:
            with RunStore(self.kiln.store_path) as store:
                records = store.runs(limit=1000)
                if any(not r.finished and store.mark_interrupted_if_dead(r.id) for r in records):
                    records = store.runs(limit=1000)
        except KilnError as exc:
            self.app.call_from_thread(self.kiln.show_error, exc.to_dict())
            return
        self.app.call_from_thread(self.show_records, records)

    def show_records(self, records: list[Any]) -> None:
        self.records = records
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        current = self.records[cursor].id if 0 <= cursor < len(self.records) else None
        table.clear()
        for record in records:
            result = RunResult.from_dict(record.result)
            samples_per_s, p99 = fmt.run_speed(result)
            table.add_row(
                Text("●" if record.id in self.marked else " ", style="bold magenta"),
                record.id,
                Text(record.status, style=fmt.STATUS_STYLE.get(record.status, "")),
                record.model,
                record.build[1],
                fmt.headline(result),
                samples_per_s,
                p99,
                record.build[0],
                result.dataset or record.dataset,
                dt.datetime.fromtimestamp(record.created).strftime("%m-%d %H:%M"),
                key=record.id,
            )
        if current is not None:
            index = next((i for i, r in enumerate(records) if r.id == current), 0)
            table.move_cursor(row=index, animate=False)
        self._hint()

    def _hint(self) -> None:
        if not self.records:
            text = Text("no runs yet: go back (esc) and press r to start one", style="dim")
        else:
            text = Text(f"{len(self.records)} runs · {len(self.marked)} marked", style="dim")
            if len(self.marked) >= 2:
                text.append(" · d compares them", style="bold")
        self.query_one("#runs-hint", Static).update(text)

    def _highlighted(self) -> Any | None:
        table = self.query_one(DataTable)
        if not self.records or not (0 <= table.cursor_row < len(self.records)):
            return None
        return self.records[table.cursor_row]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_run()

    def action_open_run(self) -> None:
        record = self._highlighted()
        if record is not None:
            from kiln_lab.tui.screens.run_detail import RunScreen

            self.app.push_screen(RunScreen(record.id))

    def action_mark(self) -> None:
        record = self._highlighted()
        if record is None:
            return
        if record.id in self.marked:
            self.marked.remove(record.id)
        else:
            self.marked.append(record.id)
        table = self.query_one(DataTable)
        table.update_cell(
            record.id,
            "mark",
            Text("●" if record.id in self.marked else " ", style="bold magenta"),
        )
        if table.cursor_row < len(self.records) - 1:
            table.move_cursor(row=table.cursor_row + 1, animate=False)
        self._hint()

    def action_compare(self) -> None:
        if len(self.marked) < 2:
            self.notify("mark two or more runs with space, then press d", severity="warning")
            return
        from kiln_lab.tui.screens.compare import CompareScreen

        self.app.push_screen(CompareScreen(list(self.marked)))

    def action_cancel_run(self) -> None:
        record = self._highlighted()
        if record is None or record.finished:
            self.notify("the highlighted run is not going", severity="warning")
            return
        self.kiln.confirm_cancel(record.id)

    def action_back(self) -> None:
        self.dismiss(None)
