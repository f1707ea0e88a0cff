"""A matrix's cells as one table, fed from the run store (``kiln matrix show`` in the app).

Read-only: the newest matrix first; ``[`` and ``]`` step to older and newer ones, enter
opens the highlighted cell's run (live if it is still going, local or on a cluster host).
Rows come from :func:`kiln_lab.core.matrix.table.matrix_rows`, the same rows the command
prints, so the app and ``kiln matrix show`` never disagree. Reloaded every two seconds
while a cell is going.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from kiln_lab.tui import format as fmt
from kiln_lab.tui.widgets.title_bar import TitleBar

if TYPE_CHECKING:
    from kiln_lab.tui.app import KilnApp

HELP = """
A matrix (`kiln matrix`): models x profiles x precisions, each cell a run in the store.

One row per cell: the task metric, its difference from the fp32 cell of the same model
and profile and from the card's published figure, samples/s and p99, the host (and Ray
node) that ran it. ★ marks the fastest cell within the matrix's accuracy budget; a cell
that could not run says why. [ and ] step through older and newer matrices; enter opens
the highlighted cell's run.
"""

COLUMNS = ("#", "model", "profile", "prec", "status", "metric", "Δ fp32", "Δ card",
           "samples/s", "p99 ms", "host", "why")  # fmt: skip
GOING = frozenset({"pending", "queued", "starting", "running"})


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.4f}"


class MatrixScreen(Screen[None]):
    SCREEN_TITLE = "Matrix"
    HELP = HELP
    CSS_PATH = Path(__file__).with_name("matrix.tcss")
    BINDINGS = [
        Binding("enter", "open_run", "Open run", priority=True),
        Binding("left_square_bracket", "older", "Older"),
        Binding("right_square_bracket", "newer", "Newer"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, matrix_id: str | None = None) -> None:
        super().__init__(id="matrix-screen")
        self.matrix_id = matrix_id
        self.matrix_ids: list[str] = []
        self.rows: list[dict[str, Any]] = []

    @property
    def kiln(self) -> KilnApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield TitleBar(id="title")
        yield DataTable(id="matrix-cells", cursor_type="row", zebra_stripes=True)
        yield Static(id="matrix-hint")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for column in COLUMNS:
            table.add_column(column, key=column)
        self.query_one(TitleBar).show(self.SCREEN_TITLE, None, 0.0)
        self.load()
        self.set_interval(2.0, self._maybe_reload)

    def _maybe_reload(self) -> None:
        if any(row["status"] in GOING for row in self.rows):
            self.load()

    @work(thread=True, exclusive=True, group="matrix", exit_on_error=False)
    def load(self) -> None:
        from kiln_lab.core.errors import KilnError
        from kiln_lab.core.matrix.table import matrix_json
        from kiln_lab.core.store import RunStore

        try:
            with RunStore(self.kiln.store_path) as store:
                ids = [m.id for m in store.matrices(limit=200)]
                chosen = self.matrix_id or (ids[0] if ids else None)
                data = matrix_json(store, chosen) if chosen else None
        except KilnError as exc:
            self.app.call_from_thread(self.kiln.show_error, exc.to_dict())
            return
        self.app.call_from_thread(self.show, ids, data)

    def show(self, ids: list[str], data: dict[str, Any] | None) -> None:
        self.matrix_ids = ids
        self.rows = data["cells"] if data else []
        if data:
            self.matrix_id = data["matrix_id"]
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        for row in self.rows:
            status = row["status"] + (" ★" if row["fastest"] else "")
            host = row["host"] or "—"
            if row.get("node_id"):
                host += f" node {row['node_id'][:8]}"
            table.add_row(
                str(row["position"]),
                row["model"],
                row["profile"],
                row["precision"],
                Text(status, style=fmt.STATUS_STYLE.get(row["status"], "dim")),
                f"{row['metric']} {row['value']:.4f}" if row["value"] is not None else "—",
                _signed(row["delta_vs_fp32"]),
                _signed(row["delta_vs_published"]),
                fmt.number(row["samples_per_s"]),
                fmt.number(row["latency_p99_ms"]),
                host,
                row["reason"] or "",
                key=str(row["position"]),
            )
        if 0 <= cursor < len(self.rows):
            table.move_cursor(row=cursor, animate=False)
        self._hint(data)

    def _hint(self, data: dict[str, Any] | None) -> None:
        if data is None:
            text = Text("no matrix yet: `kiln matrix --models A --profiles P,Q` starts one")
            text.stylize("dim")
        else:
            where = f" on {data['cluster']}" if data.get("cluster") else " (local)"
            counts = ", ".join(f"{n} {k}" for k, n in sorted(data["counts"].items()))
            index = (
                self.matrix_ids.index(data["matrix_id"])
                if data["matrix_id"] in self.matrix_ids
                else 0
            )
            text = Text(f"{data['matrix_id']}{where} · {counts} · ", style="dim")
            text.append(f"{index + 1} of {len(self.matrix_ids)}: [ older, ] newer", style="dim")
        self.query_one("#matrix-hint", Static).update(text)

    def _step(self, by: int) -> None:
        if self.matrix_id not in self.matrix_ids:
            return
        index = self.matrix_ids.index(self.matrix_id) + by
        if 0 <= index < len(self.matrix_ids):
            self.matrix_id = self.matrix_ids[index]
            self.load()

    def action_older(self) -> None:
        self._step(+1)

    def action_newer(self) -> None:
        self._step(-1)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_run()

    def action_open_run(self) -> None:
        table = self.query_one(DataTable)
        if not (0 <= table.cursor_row < len(self.rows)):
            return
        run_id = self.rows[table.cursor_row]["run"]
        if run_id is None:
            self.notify(
                "this cell has no run: "
                + (self.rows[table.cursor_row]["reason"] or "not started yet")
            )
            return
        from kiln_lab.tui.screens.run_detail import RunScreen

        self.app.push_screen(RunScreen(run_id))

    def action_back(self) -> None:
        self.dismiss(None)
