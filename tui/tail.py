"""Tail one run from the store, in a thread, and hand the app small batches.

Each poll reads up to ``batch`` events. Stage changes and log lines go out in order,
as they happened; metric samples and progress collapse to the latest value per group
(plus the throughput points, for the sparkline, and the benchmark cells, for the
grid), so a run sampling at 20 Hz costs the app one small update per poll. No Textual
here: the screen wraps the batches in messages, which keeps this loop testable with a
plain callback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kiln_lab.core.events import (
    BenchmarkCellMeasured,
    Event,
    MetricSampled,
    ProgressAdvanced,
    RunFinished,
)

POLL_S = 0.1
BATCH = 2_000
LIVENESS_S = 1.0
"""How often an idle tail asks whether the worker is still alive."""


@dataclass(frozen=True)
class Figures:
    """The latest metric values in one poll, collapsed."""

    latest: dict[str, dict[str, Any]] = field(default_factory=dict)
    """group -> values of the newest sample of that group."""
    throughput_points: tuple[float, ...] = ()
    progress: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    benchmark_cells: tuple[BenchmarkCellMeasured, ...] = ()
    """Every benchmark cell finished in this poll (each is one point of the grid)."""

    def __bool__(self) -> bool:
        return bool(self.latest or self.progress)


def split_batch(events: Sequence[Event]) -> tuple[list[Event], Figures]:
    """Ordered events (everything but metrics and progress) and the collapsed figures."""
    ordered: list[Event] = []
    latest: dict[str, dict[str, Any]] = {}
    points: list[float] = []
    cells: list[BenchmarkCellMeasured] = []
    progress: dict[str, tuple[int, int | None]] = {}
    for event in events:
        if isinstance(event, MetricSampled):
            latest[event.group] = event.values
            if event.group == "throughput":
                point = event.values.get("window_samples_per_s", event.values.get("samples_per_s"))
                if isinstance(point, int | float):
                    points.append(float(point))
        elif isinstance(event, BenchmarkCellMeasured):
            cells.append(event)
        elif isinstance(event, ProgressAdvanced):
            progress[event.stage_name] = (event.done, event.total)
        else:
            ordered.append(event)
    return ordered, Figures(latest, tuple(points), progress, tuple(cells))


def tail_run(
    store: Any,
    run_id: str,
    *,
    on_events: Callable[[list[Event]], None],
    on_figures: Callable[[Figures], None],
    on_record: Callable[[Any], None],
    cancelled: Callable[[], bool],
    poll_s: float = POLL_S,
    batch: int = BATCH,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Deliver ``run_id``'s events until it finishes or ``cancelled()``; returns its status.

    ``on_record`` receives the run's store row first (so a run whose worker has not
    written anything yet still shows its configuration) and again at the end.
    """
    record = store.run(run_id)
    on_record(record)
    after = 0
    checked = time.monotonic()
    while not cancelled():
        stored = store.events(run_id, after=after, limit=batch)
        if stored:
            after = stored[-1].seq
            events = [s.event for s in stored]
            ordered, figures = split_batch(events)
            if figures:
                on_figures(figures)
            if ordered:
                on_events(ordered)
            if any(isinstance(e, RunFinished) for e in ordered):
                record = store.run(run_id)
                on_record(record)
                return record.status
            if len(stored) == batch:
                continue
        else:
            now = time.monotonic()
            if now - checked >= LIVENESS_S:
                checked = now
                if store.mark_interrupted_if_dead(run_id):
                    continue
                record = store.run(run_id)
                if record.finished and not store.events(run_id, after=after, limit=1):
                    on_record(record)
                    return record.status
        sleep(poll_s)
    return "detached"
