"""Rich renderings shared by the headless commands: summary tables and event lines."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rich.table import Table
from rich.text import Text

from kiln_lab.tui.format import STATUS_STYLE


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
        metric = ""
        result = rec.result or {}
        metrics = result.get("metrics") or {}
        if "entity_f1" in metrics:
            metric = f"F1 {metrics['entity_f1']:.4f}"
        elif "accuracy" in metrics:
            metric = f"acc {metrics['accuracy']:.4f}"
        elif result.get("perf_only"):
            metric = "perf-only"
        table.add_row(
            rec.id,
            when(rec.created),
            Text(rec.status, style=STATUS_STYLE.get(rec.status, "")),
            rec.model,
            rec.profile,
            rec.precision,
            rec.dataset,
            metric,
        )
    return table


def result_table(result: dict[str, Any]) -> Table:
    """The end-of-run summary: accuracy, speed, parity and the published references."""
    table = Table(title=f"Run {result.get('run_id', '')}", show_header=False, expand=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("model", f"{result.get('model')} ({result.get('family')}, {result.get('task')})")
    table.add_row(
        "data", f"{result.get('dataset')}/{result.get('split')} ({result.get('examples')} examples)"
    )
    table.add_row(
        "target", f"{result.get('profile')} · {result.get('precision')} · {result.get('runtime')}"
    )
    metrics = result.get("metrics")
    if metrics:
        for key in (
            "entity_f1",
            "entity_precision",
            "entity_recall",
            "token_accuracy",
            "accuracy",
            "macro_f1",
        ):
            if key in metrics:
                table.add_row(key.replace("_", " "), fmt(metrics[key]))
    elif result.get("perf_only"):
        table.add_row("accuracy", Text("unavailable: performance-only (random weights)", "yellow"))
    thr, lat = result.get("throughput") or {}, result.get("latency") or {}
    if thr:
        table.add_row(
            "throughput",
            f"{thr.get('samples_per_s', 0):.1f} samples/s, "
            f"padding waste {thr.get('padding_waste', 0):.1%}",
        )
    if lat:
        table.add_row(
            "batch latency",
            f"p50 {lat.get('p50_ms', 0):.1f} ms · p90 "
            f"{lat.get('p90_ms', 0):.1f} ms · p99 {lat.get('p99_ms', 0):.1f} ms",
        )
    if thr.get("peak_gflops"):
        table.add_row(
            "compute",
            f"{thr['achieved_gflops']:.1f} GFLOP/s = {thr['percent_of_peak']:.1f}% of this "
            f"machine's measured {result.get('precision')} peak ({thr['peak_gflops']:.0f})",
        )
    quant = result.get("quantization")
    if quant:
        calib = quant.get("calibration") or {}
        line = f"{quant.get('recipe')}"
        if calib:
            line += f", calibrated on {calib.get('samples')} samples ({calib.get('source')}, "
            line += f"sha256 {str(calib.get('sha256'))[:12]}…)"
        table.add_row("quantization", line)
    guard = result.get("guard")
    if guard:
        steps = guard.get("steps") or []
        verdict = "within budget" if guard.get("within_budget") else "OVER budget"
        line = (
            f"fp32 {guard['float_metric']:.4f} → int8 {steps[-1]['metric']:.4f} "
            f"({steps[-1]['drop_points']:+.2f} pts drop, budget {guard['budget_points']:.2f}), "
            f"{verdict}"
        )
        if guard.get("repaired"):
            line += f"; kept {len(guard['kept_in_float'])} node(s) in float"
        table.add_row(
            "accuracy guard", Text(line, "green" if guard.get("within_budget") else "red")
        )
    parity = result.get("parity")
    if parity:
        style = {"pass": "green", "warn": "yellow", "fail": "red"}.get(parity["status"], "")
        table.add_row(
            "parity",
            Text(
                f"{parity['status'].upper()} max |Δ| {parity['max_abs_diff']:.2e}, agreement "
                f"{parity['agreement']:.4f}, cosine {parity['cosine']:.6f}",
                style,
            ),
        )
    for ref in result.get("reference") or []:
        delta = ref.get("delta")
        shown = f"{ref['value']:.4f} ({ref['precision']}, {ref['runtime'] or 'published'})"
        if delta is not None:
            shown += f" · measured {ref['measured']:.4f} · Δ {delta:+.4f}"
        table.add_row(f"ref {ref['metric']}", shown)
    stages = result.get("stages") or {}
    if stages:
        table.add_row("stages", ", ".join(f"{k} {v:.2f}s" for k, v in stages.items()))
    return table
