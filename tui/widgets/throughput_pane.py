"""Live throughput: samples/s with a sparkline, latency quantiles, batch, padding waste.

Once the benchmark stage has finished a cell, the pane turns into the batch x sequence
length grid the vendor guides publish, each cell shaded by its share of the fastest.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from kiln_lab.core.result import RunResult
from kiln_lab.tui import format as fmt
from kiln_lab.tui.state import RunView
from kiln_lab.tui.widgets.guard import guarded


def throughput_figures(view: RunView | None) -> tuple:
    """Everything the pane draws, as a value (the pane repaints only when it changes)."""
    if view is None:
        return ()
    result = view.result or RunResult()
    values = view.throughput or (result.throughput.to_dict() if result.throughput else {})
    if "p50_ms" not in values and result.latency is not None:
        latency = result.latency.to_dict()
    else:
        latency = values
    return (
        values.get("samples_per_s"),
        values.get("window_samples_per_s"),
        values.get("tokens_per_s"),
        values.get("samples"),
        values.get("padding_waste"),
        latency.get("p50_ms"),
        latency.get("p90_ms"),
        latency.get("p99_ms"),
        view.batch_size,
        tuple(view.history),
        tuple(sorted((key, cell.samples_per_s) for key, cell in view.benchmark_grid().items())),
    )


def render_grid(cells: dict[tuple[int, int], float], width: int, height: int) -> Text:
    """samples/s per batch size (rows) x sequence length (columns), shaded to the max."""
    batches = sorted({b for b, _ in cells})
    lengths = sorted({s for _, s in cells})
    top = max(cells.values()) or 1.0
    column = max(8, *(len(fmt.number(v, 0)) + 2 for v in cells.values()))
    label = max(6, len(str(max(batches))) + 2)
    lines = []
    if height >= len(batches) + 2:  # the title only where every row still fits
        lines.append(Text("samples/s · batch ╲ seq", style="dim", no_wrap=True))
    head = Text(f"{'b ╲ s':<{label}}", style="dim", no_wrap=True, overflow="ellipsis")
    for length in lengths:
        head.append(f"{length:>{column}}", style="bold")
    lines.append(head)
    for batch in batches:
        row = Text(no_wrap=True, overflow="ellipsis")
        row.append(f"{batch:<{label}}", style="bold")
        for length in lengths:
            value = cells.get((batch, length))
            if value is None:
                row.append(f"{fmt.DASH:>{column}}", style="dim")
                continue
            shade = fmt.SPARK[min(len(fmt.SPARK) - 1, round(value / top * (len(fmt.SPARK) - 1)))]
            row.append(f"{fmt.number(value, 0):>{column - 1}}")
            row.append(shade, style="cyan")
        lines.append(row)
    if len(lines) > height:  # keep the header; say what does not fit
        hidden = len(lines) - height + 1
        lines = [*lines[: height - 1], Text(f"… {hidden} more batch sizes", style="dim")]
    return Text("\n").join(lines[: max(1, height)])


def render_throughput(view: RunView | None, width: int, height: int) -> Text:
    if view is None:
        return Text("no run in view", style="dim")
    (speed, window, tokens, samples, waste, p50, p90, p99, batch, history, grid) = (
        throughput_figures(view)
    )
    cells = {key: value for key, value in grid if isinstance(value, int | float)}
    if cells:
        return render_grid(cells, width, height)
    if speed is None:
        return Text("waiting for the first batch…", style="dim")
    lines = []
    head = Text(no_wrap=True, overflow="ellipsis")
    head.append(fmt.number(speed), style="bold")
    head.append(" samples/s", style="dim")
    if window is not None and width >= 34:
        head.append(f"  now {fmt.number(window)}", style="dim")
    lines.append(head)
    spark = fmt.sparkline(list(history), max(4, width))
    if spark:
        lines.append(Text(spark, style="cyan", no_wrap=True))
    if width >= 34:
        quantiles = f"p50 {fmt.number(p50)} · p90 {fmt.number(p90)} · p99 {fmt.number(p99)} ms"
    else:
        quantiles = f"p50/90/99 {fmt.number(p50)}/{fmt.number(p90)}/{fmt.number(p99)} ms"
    lines.append(Text(quantiles, no_wrap=True, overflow="ellipsis"))
    tail = Text(no_wrap=True, overflow="ellipsis")
    tail.append("batch ", style="dim")
    tail.append(str(batch or fmt.DASH))
    tail.append(" · pad waste ", style="dim")
    tail.append(fmt.percent(waste))
    lines.append(tail)
    if height >= 6:
        more = Text(no_wrap=True, overflow="ellipsis")
        more.append("tokens/s ", style="dim")
        more.append(fmt.number(tokens, 0))
        more.append(" · samples ", style="dim")
        more.append(f"{int(samples or 0):,}")
        lines.append(more)
    return Text("\n").join(lines[: max(1, height)])


class ThroughputPane(Static):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Throughput"
        self._view: RunView | None = None
        self._drawn: tuple | None = None

    def show(self, view: RunView | None) -> None:
        figures = (id(view), throughput_figures(view))
        if figures == self._drawn:
            return
        self._view, self._drawn = view, figures
        self.refresh()

    @guarded
    def render(self) -> Text:
        size = self.content_size
        return render_throughput(self._view, size.width or 40, size.height or 5)
