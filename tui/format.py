"""Figures as text: one place decides digits, units and the colour of a delta.

Colour is never the only carrier of meaning: a delta always has its sign, a status
always has its word or glyph, so the app reads the same under ``NO_COLOR``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.text import Text

from kiln_lab.core.result import RunResult

SPARK = "▁▂▃▄▅▆▇█"
DASH = "—"

STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "cancelled": "yellow",
    "interrupted": "yellow",
    "running": "cyan",
    "starting": "cyan",
    "queued": "dim",
}


def headline(result: RunResult) -> str:
    """A run's task metric in a few characters, for one cell of a run list."""
    found = result.metrics.headline() if result.metrics is not None else None
    if found is not None:
        name, value = found
        return f"{'F1' if name == 'entity_f1' else 'acc'} {value:.4f}"
    return "perf-only" if result.perf_only else ""


def metric(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    return f"{value:.{digits}f}"


def delta(value: float | None, digits: int = 4) -> Text:
    """A signed delta, green when it gains, yellow for a small loss, red for a real one."""
    if value is None or math.isnan(value):
        return Text(DASH, style="dim")
    style = "green" if value >= 0 else "yellow" if value > -0.01 else "red"
    sign = "+" if value >= 0 else "−"
    return Text(f"{sign}{abs(value):.{digits}f}", style=style)


def ratio(value: float | None) -> Text:
    """A speed ratio vs a baseline (×1.80), green when faster."""
    if value is None or math.isnan(value) or value <= 0:
        return Text(DASH, style="dim")
    style = "green" if value >= 1.0 else "yellow" if value > 0.95 else "red"
    return Text(f"×{value:.2f}", style=style)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def clock(seconds: float | None) -> str:
    """Elapsed time as ``M:SS`` (or ``H:MM:SS``), for log lines and the title bar."""
    if seconds is None:
        return "-:--"
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def number(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if abs(value) >= 10_000:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def run_speed(result: RunResult) -> tuple[str, str]:
    """A run's samples/s and p99 (ms) for one row of a run list.

    The evaluation's figures; for a benchmark-only run (no evaluation pass), its fastest
    grid cell's, marked "(grid)" so the two kinds of figure are never read as one.
    """
    thr, lat = result.throughput, result.latency
    if thr is not None and thr.samples_per_s is not None:
        return number(thr.samples_per_s), number(lat.p99_ms if lat is not None else None)
    cells = [c for c in result.benchmark_cells if c.samples_per_s is not None]
    if not cells:
        return DASH, DASH
    best = max(cells, key=lambda c: c.samples_per_s or 0.0)
    p99 = best.latency.p99_ms if best.latency is not None else None
    return f"{number(best.samples_per_s)} (grid)", number(p99)


def megabytes(value: float | None) -> str:
    if value is None:
        return DASH
    if value >= 10_000:
        return f"{value / 1000:.1f} GB"
    return f"{value:.0f} MB"


def percent(value: float | None, digits: int = 1) -> str:
    """A fraction (0.123) as a percentage (12.3%)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    return f"{value * 100:.{digits}f}%"


def sparkline(values: Sequence[float], width: int) -> str:
    """The last ``width`` values as block characters, scaled from 0 to their maximum."""
    if width <= 0:
        return ""
    shown = [v for v in values if not math.isnan(v)][-width:]
    if not shown:
        return ""
    top = max(shown)
    if top <= 0:
        return SPARK[0] * len(shown)
    last = len(SPARK) - 1
    return "".join(SPARK[min(last, max(0, round(v / top * last)))] for v in shown)


def bar(done: int, total: int | None, width: int) -> str:
    """A progress bar of ``width`` cells (eighth blocks), or empty when the total is unknown."""
    if not total or width <= 0:
        return ""
    fraction = min(1.0, max(0.0, done / total))
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    partial = " ▏▎▍▌▋▊▉"[part] if part else ""
    return ("█" * full + partial).ljust(width, "·")[:width]
