"""The log with its filter line: stage and level filters, and ``/`` search."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, Static

from kiln_lab.core.stages import STAGES
from kiln_lab.tui.state import LEVELS, LogEntry
from kiln_lab.tui.widgets.log_view import LogView

STAGE_CHOICES: tuple[str | None, ...] = (None, *STAGES)


class LogPanel(Vertical):
    """Header line (filters, counts, follow state), the log, and a search input."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Log"

    def compose(self) -> ComposeResult:
        yield Static(id="log-filters")
        yield LogView(id="log")
        yield Input(placeholder="search the log (enter keeps it, esc clears)", id="log-search")

    def on_mount(self) -> None:
        self.query_one("#log-search", Input).display = False
        self.update_header()

    @property
    def log_view(self) -> LogView:
        return self.query_one(LogView)

    def add(self, entries: Iterable[LogEntry]) -> None:
        entries = list(entries)
        if entries:
            self.log_view.add(entries)
            self.update_header()

    def reset(self, run_started: float | None = None) -> None:
        view = self.log_view
        view.clear()
        view.run_started = run_started
        self.update_header()

    # -- filters ----------------------------------------------------------------------------
    def cycle_stage(self) -> None:
        view = self.log_view
        index = STAGE_CHOICES.index(view.stage) if view.stage in STAGE_CHOICES else 0
        view.set_filters(stage=STAGE_CHOICES[(index + 1) % len(STAGE_CHOICES)])
        self.update_header()

    def set_stage(self, stage: str | None) -> None:
        self.log_view.set_filters(stage=stage)
        self.update_header()

    def cycle_level(self) -> None:
        view = self.log_view
        view.set_filters(min_level=(view.min_level + 1) % len(LEVELS))
        self.update_header()

    def set_level(self, level: str) -> None:
        self.log_view.set_filters(min_level=LEVELS.index(level))
        self.update_header()

    def open_search(self) -> None:
        search = self.query_one("#log-search", Input)
        search.display = True
        search.value = self.log_view.search
        search.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "log-search":
            event.stop()
            self.log_view.set_filters(search=event.value)
            self.update_header()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "log-search":
            event.stop()
            event.input.display = bool(event.value)
            self.log_view.focus()

    def close_search(self) -> bool:
        """Clear and hide the search; False when it was not open."""
        search = self.query_one("#log-search", Input)
        if not search.display and not self.log_view.search:
            return False
        search.value = ""
        search.display = False
        self.log_view.set_filters(search="")
        self.update_header()
        self.log_view.focus()
        return True

    def on_log_view_followed(self, event: LogView.Followed) -> None:
        event.stop()
        self.update_header()

    def update_header(self) -> None:
        view = self.log_view
        header = Text(no_wrap=True, overflow="ellipsis")
        header.append("stage ", style="dim")
        header.append(view.stage or "all", style="bold")
        header.append(" · level ", style="dim")
        header.append(f"{LEVELS[view.min_level]}+", style="bold")
        if view.search:
            header.append(" · ", style="dim")
            header.append(f"/{view.search}", style="bold reverse")
        header.append(f" · {view.line_count:,}/{view.total:,}", style="dim")
        if not view.following:
            header.append(" · paused: end follows", style="yellow")
        self.query_one("#log-filters", Static).update(header, layout=False)
