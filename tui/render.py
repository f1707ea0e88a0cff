"""Rich renderings shared by the headless commands: summary tables and event lines."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rich.table import Table
from rich.text import Text

from kiln_lab.core.result import Latency, RunResult, Throughput
from kiln_lab.tui.format import STATUS_STYLE, headline


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


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
            rec.profile,
            rec.precision,
            rec.dataset,
            headline(RunResult.from_dict(rec.result)),
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
            value = metrics.value(key)
            if value is not None:
                table.add_row(key.replace("_", " "), fmt(value))
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
    if thr.peak_gflops:
        table.add_row(
            "compute",
            f"{thr.achieved_gflops:.1f} GFLOP/s = {thr.percent_of_peak:.1f}% of this "
            f"machine's measured {result.precision} peak ({thr.peak_gflops:.0f})",
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
        if ref.delta is not None:
            shown += f" · measured {ref.measured:.4f} · Δ {ref.delta:+.4f}"
        table.add_row(f"ref {ref.metric}", shown)
    if result.stages:
        table.add_row("stages", ", ".join(f"{k} {v:.2f}s" for k, v in result.stages.items()))
    return table
