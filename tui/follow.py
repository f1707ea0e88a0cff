"""Follow a run from the store in the terminal: stage lines, a progress bar, warnings."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from kiln_lab.core.events import (
    BenchmarkCellMeasured,
    LogLine,
    MetricSampled,
    ProgressAdvanced,
    RunFinished,
    StageFailed,
    StageFinished,
    StageSkipped,
    StageStarted,
)


def _live_figure(values: dict[str, Any]) -> str:
    if "entity_f1" in values:
        return f"F1 {values['entity_f1']:.4f}"
    if "accuracy" in values:
        return f"acc {values['accuracy']:.4f}"
    return ""


def follow_run(
    store: Any, run_id: str, console: Console, *, quiet: bool = False, after: int = 0
) -> str:
    """Render events after seq ``after`` until the run finishes; returns its final status.

    ``after`` is where the attempt being followed begins: a resumed run's store holds
    the earlier attempts' ``RunFinished`` events, and following from 0 would stop there.
    """
    status = "unknown"
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[figure]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=quiet,
    )
    tasks: dict[str, Any] = {}
    with progress:
        for stored in store.tail(run_id, after=after):
            event = stored.event
            if quiet and not isinstance(event, RunFinished):
                continue
            if isinstance(event, StageStarted):
                tasks[event.stage_name] = progress.add_task(event.stage_name, total=None, figure="")
            elif isinstance(event, ProgressAdvanced) and event.stage_name in tasks:
                progress.update(tasks[event.stage_name], completed=event.done, total=event.total)
            elif isinstance(event, MetricSampled) and event.stage_name in tasks:
                figure = _live_figure(event.values)
                if event.group == "throughput":
                    figure = f"{event.values.get('samples_per_s', 0):.1f} samples/s"
                if figure:
                    progress.update(tasks[event.stage_name], figure=figure)
            elif isinstance(event, BenchmarkCellMeasured) and event.stage_name in tasks:
                figure = f"{event.samples_per_s:.1f} samples/s"
                progress.update(tasks[event.stage_name], figure=figure)
            elif isinstance(event, StageFinished):
                if event.stage_name in tasks:
                    progress.remove_task(tasks.pop(event.stage_name))
                console.print(f"[green]✓[/] {event.stage_name:<10} {event.duration_s:7.2f}s")
            elif isinstance(event, StageSkipped):
                console.print(f"[dim]– {event.stage_name:<10} skipped: {event.reason}[/]")
            elif isinstance(event, StageFailed):
                if event.stage_name in tasks:
                    progress.remove_task(tasks.pop(event.stage_name))
                console.print(f"[red]✗ {event.stage_name:<10} {event.error.get('title')}[/]")
            elif isinstance(event, LogLine) and event.level in ("warning", "error", "critical"):
                console.print(f"[yellow]{event.level}:[/] {event.message}", highlight=False)
            elif isinstance(event, RunFinished):
                status = event.status
    return status
