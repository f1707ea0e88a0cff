"""Reports: the seeds' comparison tables and speed grids, as md, csv, json or html.

One row per run: model, profile, precision, the task metric, its delta against the
run's fp32 baseline (:mod:`kiln_lab.core.baseline`: in the selection, else the newest
in the store) and against the card's published figure, samples/s, latency p99 and the speed-up.
Every report carries each run's environment (versions, CPU, threads, calibration set
hash) so a figure can be reproduced. Files are written only inside ``--out``.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kiln_lab.core.baseline import baseline_for
from kiln_lab.core.errors import ConfigError
from kiln_lab.core.result import Latency, RunResult
from kiln_lab.core.store import RunRecord

FORMATS = ("md", "csv", "json", "html")


def _metric(result: RunResult) -> tuple[str | None, float | None]:
    headline = result.metrics.headline() if result.metrics is not None else None
    return headline if headline is not None else (None, None)


def comparison_rows(records: Sequence[RunRecord], history: Sequence[RunRecord]) -> list[dict]:
    """The comparison table; baselines come from the selection first, then the history."""
    rows = []
    for record in records:
        result = record.run_result
        name, value = _metric(result)
        base = baseline_for(record, records, history)
        base_result = base.run_result if base is not None else RunResult()
        _, base_value = _metric(base_result)
        speed = result.throughput.samples_per_s if result.throughput else None
        base_speed = base_result.throughput.samples_per_s if base_result.throughput else None
        published = result.published(name)
        calibration = result.quantization.calibration if result.quantization else None
        rows.append(
            {
                "run": record.id,
                "status": record.status,
                "model": record.model,
                "profile": record.profile,
                "precision": record.precision,
                "dataset": record.dataset,
                "metric": name,
                "value": value,
                "fp32_run": base.id if base else None,
                "delta_vs_fp32": value - base_value
                if value is not None and base_value is not None
                else None,
                "published": published.value if published else None,
                "delta_vs_published": value - published.value
                if published and published.value is not None and value is not None
                else None,
                "samples_per_s": speed,
                "latency_p99_ms": result.latency.p99_ms if result.latency else None,
                "speedup_vs_fp32": speed / base_speed if speed and base_speed else None,
                "percent_of_peak": result.throughput.percent_of_peak if result.throughput else None,
                "calibration_sha256": calibration.sha256 if calibration else None,
            }
        )
    return rows


def grid_rows(records: Sequence[RunRecord]) -> list[dict]:
    rows = []
    for record in records:
        for cell in record.run_result.benchmark_cells:
            latency = cell.latency or Latency()
            rows.append(
                {
                    "run": record.id,
                    "precision": record.precision,
                    "batch_size": cell.batch_size,
                    "seq_len": cell.seq_len,
                    "samples_per_s": cell.samples_per_s,
                    "spread_pct": cell.spread_pct,
                    "latency_p50_ms": latency.p50_ms,
                    "latency_p99_ms": latency.p99_ms,
                    "percent_of_peak": cell.percent_of_peak,
                }
            )
    return rows


def environments(records: Sequence[RunRecord]) -> dict[str, Any]:
    out = {}
    for record in records:
        result = record.run_result
        calibration = result.quantization.calibration if result.quantization else None
        out[record.id] = {
            "environment": result.environment,
            "runtime": result.runtime,
            "runtime_settings": result.runtime_settings,
            "profile": record.profile,
            "data_hash": result.data_hash,
            "calibration": calibration.to_dict() if calibration else None,
            "config": record.config,
        }
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:+.4f}" if abs(value) < 1 and value != 0 else f"{value:.4g}"
    return str(value)


COMPARE_COLUMNS = (
    "run",
    "model",
    "profile",
    "precision",
    "metric",
    "value",
    "delta_vs_fp32",
    "published",
    "delta_vs_published",
    "samples_per_s",
    "latency_p99_ms",
    "speedup_vs_fp32",
)
GRID_COLUMNS = (
    "run",
    "precision",
    "batch_size",
    "seq_len",
    "samples_per_s",
    "spread_pct",
    "latency_p50_ms",
    "latency_p99_ms",
    "percent_of_peak",
)


def _md_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for col in columns:
            value = row.get(col)
            if col in ("value", "published") and isinstance(value, float):
                cells.append(f"{value:.4f}")
            elif isinstance(value, float):
                cells.append(f"{value:.2f}" if "delta" not in col else f"{value:+.4f}")
            else:
                cells.append("—" if value is None else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_md(compare: list[dict], grid: list[dict], env: dict) -> str:
    parts = ["# Kiln report", "", "## Accuracy and speed", "", _md_table(compare, COMPARE_COLUMNS)]
    if grid:
        parts += ["", "## Batch x sequence length", "", _md_table(grid, GRID_COLUMNS)]
    parts += ["", "## Environment", ""]
    for run_id, info in env.items():
        e = info.get("environment") or {}
        cpu = e.get("cpu") or {}
        pkgs = ", ".join(f"{k} {v}" for k, v in (e.get("packages") or {}).items() if v)
        calib = (info.get("calibration") or {}).get("sha256")
        parts.append(
            f"- **{run_id}**: {info.get('runtime')} {info.get('runtime_settings')}; "
            f"CPU {cpu.get('model')} ({cpu.get('usable_cores')} cores, "
            f"{', '.join(cpu.get('flags') or [])}); Python {e.get('python')}; {pkgs}; "
            f"data {str(info.get('data_hash'))[:16]}; calibration "
            f"{calib[:16] if calib else '—'}"
        )
    return "\n".join(parts) + "\n"


def render_csv(compare: list[dict], grid: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["table", *COMPARE_COLUMNS])
    for row in compare:
        writer.writerow(["comparison", *(row.get(c) for c in COMPARE_COLUMNS)])
    if grid:
        writer.writerow(["table", *GRID_COLUMNS])
        for row in grid:
            writer.writerow(["grid", *(row.get(c) for c in GRID_COLUMNS)])
    return buffer.getvalue()


def _svg_bars(rows: Sequence[dict], key: str, label: str) -> str:
    values = [(r["run"], r["precision"], r.get(key) or 0.0) for r in rows]
    if not values:
        return ""
    top = max(v for *_, v in values) or 1.0
    bar_h, width = 22, 420
    height = bar_h * len(values) + 30
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + 260}" height="{height}" '
        f'role="img" aria-label="{html.escape(label)}">',
        f'<text x="0" y="14" font-size="13" font-weight="bold">{html.escape(label)}</text>',
    ]
    for i, (run, precision, value) in enumerate(values):
        y = 24 + i * bar_h
        w = max(1.0, width * value / top)
        out.append(
            f'<text x="0" y="{y + 14}" font-size="11">{html.escape(run)} '
            f"{html.escape(precision)}</text>"
        )
        out.append(
            f'<rect x="200" y="{y + 3}" width="{w:.1f}" height="{bar_h - 6}" fill="#4c78a8"/>'
        )
        out.append(f'<text x="{205 + w:.1f}" y="{y + 14}" font-size="11">{value:.4g}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _html_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(row.get(c)))}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(compare: list[dict], grid: list[dict], env: dict) -> str:
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "th{background:#eee}pre{background:#f6f6f6;padding:1em}"
    )
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>Kiln report</title>"
        f"<style>{style}</style></head><body><h1>Kiln report</h1>",
        "<h2>Accuracy and speed</h2>",
        _html_table(compare, COMPARE_COLUMNS),
        _svg_bars(compare, "samples_per_s", "samples/s"),
        _svg_bars([r for r in compare if r.get("value") is not None], "value", "task metric"),
    ]
    if grid:
        parts += [
            "<h2>Batch x sequence length</h2>",
            _html_table(grid, GRID_COLUMNS),
            _svg_bars(
                [{**r, "run": f"{r['run']} b{r['batch_size']} s{r['seq_len']}"} for r in grid],
                "samples_per_s",
                "samples/s per cell",
            ),
        ]
    parts += [
        "<h2>Environment</h2>",
        f"<pre>{html.escape(json.dumps(env, indent=2, default=str))}</pre>",
        "</body></html>",
    ]
    return "\n".join(parts)


def write_report(
    records: Sequence[RunRecord], history: Sequence[RunRecord], fmt: str, out_dir: Path
) -> Path:
    """Write ``report.<fmt>`` into ``out_dir`` (created) and return its path."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown report format {fmt!r}", hint=f"use one of {FORMATS}")
    compare = comparison_rows(records, history)
    grid = grid_rows(records)
    env = environments(records)
    if fmt == "md":
        text = render_md(compare, grid, env)
    elif fmt == "csv":
        text = render_csv(compare, grid)
    elif fmt == "json":
        text = json.dumps(
            {"comparison": compare, "grid": grid, "environment": env}, indent=2, default=str
        )
    else:
        text = render_html(compare, grid, env)
    path = (out_dir / f"report.{fmt}").resolve()
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        if path.parent != out_dir.resolve():
            raise ConfigError("report path escapes the output directory", path=path)
        # Written beside the report and renamed: a full disk leaves the old report whole.
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        raise ConfigError(
            f"cannot write the report to {out_dir}: "
            + ("the disk is full" if full else (exc.strerror or str(exc))),
            path=out_dir,
            hint="free some space, or choose another directory with --out"
            if full
            else "choose a directory you can write to with --out",
        ) from exc
    return path
