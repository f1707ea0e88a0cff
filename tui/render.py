"""Rich renderings shared by the headless commands: summary tables and event lines."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from kiln_lab.core.breakdown import (
    figure_text,
    interval_text,
    paired_note,
    per_language_rows,
    stop_note,
)
from kiln_lab.core.result import Latency, RunResult, Throughput
from kiln_lab.tui.format import STATUS_STYLE, headline, number


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def size_text(size: int | None) -> str:
    """Bytes as an operator reads them: 812 B, 14.2 kB, 3.8 MB, 1.21 GB."""
    if not isinstance(size, int) or isinstance(size, bool):
        return "—"
    for unit, scale, digits in (("GB", 1e9, 2), ("MB", 1e6, 1), ("kB", 1e3, 1)):
        if size >= scale:
            return f"{size / scale:.{digits}f} {unit}"
    return f"{size} B"


def _best_speed(result: RunResult) -> str:
    """A benchmark-only run's figure for a run list: its fastest grid cell."""
    speeds = [c.samples_per_s for c in result.benchmark_cells if c.samples_per_s]
    return f"{number(max(speeds))} samples/s (grid best)" if speeds else ""


def when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def runs_table(records: list[Any]) -> Table:
    table = Table(title="Runs", header_style="bold", expand=False)
    for col in ("run", "started", "status", "model", "profile", "precision", "dataset", "metric"):
        table.add_column(col, no_wrap=col in ("run", "started"))
    for rec in records:
        table.add_row(
            rec.id,
            when(rec.created),
            Text(rec.status, style=STATUS_STYLE.get(rec.status, "")),
            rec.model,
            *rec.build,
            rec.dataset,
            headline(result := RunResult.from_dict(rec.result)) or _best_speed(result),
        )
    return table


def result_table(result: RunResult) -> Table:
    """The end-of-run summary: accuracy, speed, parity and the published references."""
    table = Table(title=f"Run {result.run_id or ''}", show_header=False, expand=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("model", f"{result.model} ({result.family}, {result.task})")
    table.add_row("data", f"{result.dataset}/{result.split} ({result.examples} examples)")
    table.add_row("target", f"{result.profile} · {result.precision} · {result.runtime}")
    metrics = result.metrics
    if metrics is not None and metrics.to_dict():
        for key in (
            "entity_f1",
            "entity_precision",
            "entity_recall",
            "token_accuracy",
            "accuracy",
            "macro_f1",
        ):
            text = figure_text(metrics, key)
            if text is not None:
                table.add_row(key.replace("_", " "), text)
        for label, note in (
            ("evaluation", stop_note(metrics)),
            ("vs fp32", paired_note(metrics, result.precision)),
        ):
            if note:
                table.add_row(label, note)
    elif result.perf_only:
        table.add_row("accuracy", Text("unavailable: performance-only (random weights)", "yellow"))
    thr, lat = result.throughput or Throughput(), result.latency or Latency()
    if thr.to_dict():
        line = f"{thr.samples_per_s or 0:.1f} samples/s, padding waste {thr.padding_waste or 0:.1%}"
        if thr.covers:
            line += f" ({thr.covers}; resumed run, {thr.resumed_batches} batches from before)"
        table.add_row("throughput", line)
    if lat.to_dict():
        table.add_row(
            "batch latency",
            f"p50 {lat.p50_ms or 0:.1f} ms · p90 {lat.p90_ms or 0:.1f} ms · p99 "
            f"{lat.p99_ms or 0:.1f} ms",
        )
    if thr.peak_gflops and thr.percent_of_peak is not None:
        line = (
            f"{thr.achieved_gflops:.1f} GFLOP/s = {thr.percent_of_peak:.1f}% of this "
            f"machine's measured {thr.peak_kernel or result.precision} peak "
            f"({thr.peak_gflops:.0f})"
        )
        if thr.peak_suspect:
            line += f" [suspect: {thr.peak_suspect}]"
        table.add_row("compute", line)
    if result.worker and result.worker.get("peak_rss_mb"):
        table.add_row("worker", f"peak memory {result.worker['peak_rss_mb']:,.0f} MB")
    if thr.load and thr.load.get("busy"):
        table.add_row("machine", f"busy while timed: {thr.load['busy']}")
    operators = result.benchmark.operators if result.benchmark is not None else None
    if operators and operators.get("ops"):
        top = ", ".join(f"{o['op_type']} {o['share']:.0%}" for o in operators["ops"][:6])
        table.add_row(
            "time per op",
            f"{top} (batch {operators.get('batch_size')} x seq {operators.get('seq_len')}, "
            f"{operators.get('source')})",
        )
    quant = result.quantization
    if quant is not None and quant.to_dict():
        calib = quant.calibration
        line = f"{quant.recipe}"
        if calib is not None and calib.to_dict():
            line += f", calibrated on {calib.samples} samples ({calib.source}, "
            line += f"sha256 {str(calib.sha256)[:12]}…)"
        table.add_row("quantization", line)
    guard = result.guard
    if guard is not None and guard.last_step is not None:
        last = guard.last_step
        verdict = "within budget" if guard.within_budget else "OVER budget"
        line = (
            f"fp32 {guard.float_metric:.4f} → int8 {last.metric:.4f} "
            f"({last.drop_points:+.2f} pts drop, budget {guard.budget_points:.2f}), "
            f"{verdict}"
        )
        if guard.repaired:
            line += f"; kept {len(guard.kept_in_float or ())} node(s) in float"
        if last.verdict and last.verdict.get("summary"):
            line += (
                f"; paired on {last.verdict.get('examples')} examples: {last.verdict['summary']}"
            )
        table.add_row("accuracy guard", Text(line, "green" if guard.within_budget else "red"))
    parity = result.parity
    if parity is not None and parity.to_dict():
        style = {"pass": "green", "warn": "yellow", "fail": "red"}.get(str(parity.status), "")
        table.add_row(
            "parity",
            Text(
                f"{str(parity.status).upper()} max |Δ| {parity.max_abs_diff:.2e}, agreement "
                f"{parity.agreement:.4f}, cosine {parity.cosine:.6f}",
                style,
            ),
        )
    for ref in result.references:
        shown = f"{ref.value:.4f} ({ref.precision}, {ref.runtime or 'published'})"
        shown += f" on {ref.dataset or 'its source’s own data'}"
        if ref.delta is not None:
            shown += f" · measured {ref.measured:.4f} · Δ {ref.delta:+.4f}"
        table.add_row(f"ref {ref.metric}", shown)
    if result.stages:
        table.add_row("stages", ", ".join(f"{k} {v:.2f}s" for k, v in result.stages.items()))
    return table


SCORE_COLUMNS = ("precision", "recall", "f1", "support")
"""Per-type score columns shown first; any other key a result holds follows them."""


def _cell(value: Any) -> str:
    """One figure of a per-type row, whatever shape a newer or older result gives it."""
    if isinstance(value, bool) or value is None:
        return fmt(value)
    if isinstance(value, float | int):
        return fmt(value)
    if isinstance(value, list | tuple) and all(isinstance(v, float | int) for v in value):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_cell(v)}" for k, v in value.items())
    return str(value)


def per_type_table(result: RunResult) -> Table | None:
    """Precision, recall, F1 and support per entity type (NER) or class, as stored.

    Keys beyond the usual four (intervals, for one) are shown too, so a result written by
    a newer Kiln is never cut down to what this one knows.
    """
    metrics = result.metrics
    if metrics is None:
        return None
    scores = metrics.per_type or metrics.per_class
    if not scores:
        return None
    rows = {name: score.to_dict() for name, score in scores.items()}
    spreads = (
        (metrics.intervals or {}).get("per_type")
        or (metrics.intervals or {}).get("per_class")
        or {}
    )
    for name, row in rows.items():
        if isinstance(spreads.get(name), dict) and spreads[name].get("f1"):
            row["f1_interval"] = interval_text(spreads[name]["f1"])
    keys = [k for k in SCORE_COLUMNS if any(k in row for row in rows.values())]
    keys += list(dict.fromkeys(k for row in rows.values() for k in row if k not in keys))
    what = "entity type" if metrics.per_type else "class"
    table = Table(title=f"Per {what}", header_style="bold", expand=False)
    table.add_column(what)
    for key in keys:
        table.add_column(key.replace("_", " "), justify="right")
    for name, row in rows.items():
        table.add_row(name, *(_cell(row.get(key)) for key in keys))
    return table


def per_language_table(result: RunResult) -> Table | None:
    """Accuracy per language with its interval, beside the card's published per-language
    figures (the XNLI table of the seed recipe); deltas only on the figures' own data."""
    if result.metrics is None or not result.metrics.per_language:
        return None
    figure = result.published("accuracy")
    comparable = bool(figure and figure.applies_to(result.dataset, result.split))
    rows = per_language_rows(result.metrics, result.references, comparable=comparable)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    table = Table(title="Per language", header_style="bold", expand=False)
    for column in columns:
        table.add_column(
            column.replace("_", " "), justify="left" if column == "language" else "right"
        )
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    return table


def grid_table(result: RunResult) -> Table | None:
    """The benchmark grid, batch sizes down and sequence lengths across: samples/s and
    p99 batch latency per cell (the spread across trials where there were several)."""
    cells = [c for c in result.benchmark_cells if c.shape is not None]
    if not cells:
        return None
    batches = sorted({c.batch_size for c in cells})
    seq_lens = sorted({c.seq_len for c in cells})
    by_shape = {c.shape: c for c in cells}
    table = Table(
        title="Benchmark: samples/s · p99 batch latency", header_style="bold", expand=False
    )
    table.add_column("batch \\ seq", justify="right")
    for seq_len in seq_lens:
        table.add_column(str(seq_len), justify="right")
    for batch in batches:
        row = []
        for seq_len in seq_lens:
            cell = by_shape.get((batch, seq_len))
            if cell is None or cell.samples_per_s is None:
                row.append("—")
                continue
            text = f"{cell.samples_per_s:,.1f}/s"
            p99 = cell.latency.p99_ms if cell.latency is not None else None
            text += f" · p99 {p99:.1f} ms" if p99 is not None else " · p99 —"
            if cell.spread_pct:
                text += f" (±{cell.spread_pct:.0f}%)"
            row.append(text)
        table.add_row(str(batch), *row)
    return table


def result_view(result: RunResult) -> RenderableType:
    """Everything a finished run has to show on the command line: the summary, the
    per-type scores and the benchmark grid (each only where the result holds it)."""
    parts = [
        result_table(result),
        per_type_table(result),
        per_language_table(result),
        grid_table(result),
    ]
    return Group(*(part for part in parts if part is not None))


def artifacts_table(artifacts: list[dict[str, Any]]) -> Table:
    """What a run built and where it lies (``kiln export`` copies them away)."""
    from pathlib import Path

    table = Table(title="Artifacts", header_style="bold", expand=False)
    for col in ("stage", "artifact", "size", "path"):
        table.add_column(col, justify="right" if col == "size" else "left")
    for item in artifacts:
        path = str(item.get("path") or "")
        size = item.get("size")
        there = bool(path) and Path(path).exists()
        table.add_row(
            str(item.get("stage") or ""),
            str(item.get("name") or ""),
            size_text(size),
            path if there else Text(f"{path} (gone: the cache was cleared)", "yellow"),
        )
    return table
