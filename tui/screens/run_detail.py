"""One run from the history, replayed from the store: its timeline, log and panes.

A run that is still going shows live, exactly as on the main screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding

from kiln_lab.tui.screens.monitor import LOG_BINDINGS, ZOOM_BINDING, MonitorScreen
from kiln_lab.tui.state import RunView
from kiln_lab.tui.widgets.run_info import RunInfo

HELP = """
One run, rebuilt from the run store: every event it wrote, in order. The stage
timeline, the log and the accuracy, throughput and resource panes show what the run
showed while it went; a run that is still going is live.

The log can be filtered by stage (s) and level (l) and searched (/); long lines wrap,
and z shows the log alone across the screen (z again for the panes). Esc goes back to
the run history.
"""


class RunScreen(MonitorScreen):
    SCREEN_TITLE = "Run"
    HELP = HELP
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("c", "cancel_run", "Cancel"),
        Binding("e", "stop_evaluation", "Stop evaluating (keep figures)", show=False),
        Binding("slash", "search_log", "Search"),
        ZOOM_BINDING,
        *LOG_BINDINGS,
    ]

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def compose_left(self) -> ComposeResult:
        yield RunInfo(id="run-info")

    def when_ready(self) -> None:
        self.attach(self.run_id)

    def update_left(self, view: RunView | None) -> None:
        if view is not None:
            self.query_one(RunInfo).show(view)

    def action_back(self) -> None:
        if self.log_panel.close_search():
            return
        self.dismiss(None)
