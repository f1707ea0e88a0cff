"""Bridge messages: what thread workers tell the UI thread, named as facts."""

from __future__ import annotations

from typing import Any

from textual.message import Message

from kiln_lab.core.events import Event
from kiln_lab.tui.catalogue import Selection
from kiln_lab.tui.tail import Figures


class RunEventsFetched(Message):
    """A batch of a run's events, in order (stage changes, log lines, the finish)."""

    def __init__(self, run_id: str, events: list[Event]) -> None:
        super().__init__()
        self.run_id = run_id
        self.events = events


class RunFiguresSampled(Message):
    """The latest metric values of a run; a newer one replaces a queued older one."""

    def __init__(self, run_id: str, figures: Figures) -> None:
        super().__init__()
        self.run_id = run_id
        self.figures = figures

    def can_replace(self, message: Message) -> bool:
        """Called on the older message with the newer one: fold this one into it."""
        if isinstance(message, RunFiguresSampled) and message.run_id == self.run_id:
            older, newer = self.figures, message.figures
            message.figures = Figures(
                older.latest | newer.latest,
                (older.throughput_points + newer.throughput_points)[-240:],
                older.progress | newer.progress,
                older.benchmark_cells + newer.benchmark_cells,
            )
            return True
        return False


class RunRecordLoaded(Message):
    """A run's row from the store (status, config, result, error)."""

    def __init__(self, record: Any) -> None:
        super().__init__()
        self.record = record


class ReferenceRunsLoaded(Message):
    """Succeeded fp32 runs, newest first: candidates for the accuracy pane's reference."""

    def __init__(self, run_id: str, records: tuple[Any, ...]) -> None:
        super().__init__()
        self.run_id = run_id
        self.records = records


class SelectionChanged(Message):
    def __init__(self, selection: Selection) -> None:
        super().__init__()
        self.selection = selection


class RunLaunched(Message):
    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id


class RunLaunchFailed(Message):
    """Preflight or launch refused the run: a KilnError as a dict."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__()
        self.error = error
