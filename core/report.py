"""Reports: the seeds' comparison tables and speed grids, as md, csv, json or html.

One row per run: model, profile, precision, the dataset, the task metric with its
interval, whether the evaluation was complete (``final``) or ``limited``, ``stopped``
early or ``partial``, its delta against the run's fp32 baseline
(:mod:`kiln_lab.core.baseline`: in the selection, else the newest in the store; with the
paired interval where the run measured one) and against the card's figure (only when
that figure was measured on the same data, in full), samples/s, latency p99 and the
speed-up. Values are plain; only deltas carry a sign. Per-type and per-language
breakdowns follow (:mod:`kiln_lab.core.breakdown`), and each run's environment as a
table (versions, CPU, threads, calibration set hash) so a figure can be reproduced.
Files are written only inside ``--out``.
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

from kiln_lab.core.errors import ConfigError
from kiln_lab.core.report_rows import (
    breakdown_rows,
    comparison_rows,
    environment_rows,
    environments,
    evaluation_state,
    grid_rows,
)
from kiln_lab.core.store import RunRecord

__all__ = ["comparison_rows", "evaluation_state", "grid_rows", "write_report"]

FORMATS = ("md", "csv", "json", "html")


def _fmt(value: Any, column: str = "") -> str:
    """A cell as text: plain values, a sign only on deltas (issue 15: "+0.8917" read as
    a change when it was an accuracy)."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if "delta" in column:
            return f"{value:+.4f}"
        if column in FRACTIONS or column.startswith("published"):
            return f"{value:.4f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}" if column not in ("batch_size", "seq_len") else str(value)
    return str(value)


FRACTIONS = frozenset({"value", "precision", "recall", "f1", "accuracy"})
"""Columns holding a 0-1 figure, printed to four places; other numbers to two."""
COMPARE_COLUMNS = (
    "run",
    "model",
    "profile",
    "precision",
    "dataset",
    "metric",
    "value",
    "interval",
    "evaluation",
    "delta_vs_fp32",
    "paired_interval",
    "published",
    "published_on",
    "delta_vs_published",
    "samples_per_s",
    "latency_p99_ms",
    "speedup_vs_fp32",
)
TYPE_COLUMNS = (
    "run",
    "dataset",
    "type",
    "precision",
    "precision_interval",
    "recall",
    "recall_interval",
    "f1",
    "f1_interval",
    "support",
)
ENVIRONMENT_COLUMNS = (
    "run",
    "runtime",
    "settings",
    "cpu",
    "cores",
    "python",
    "packages",
    "data_hash",
    "calibration",
)


def _columns(rows: Sequence[dict], columns: Sequence[str]) -> list[str]:
    """``columns`` that some row has (the per-language table's published columns vary)."""
    present = [c for c in columns if any(c in row for row in rows)]
    extra = [k for row in rows for k in row if k not in present]
    return present + list(dict.fromkeys(extra))


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
        cells = [_fmt(row.get(col), col).replace("|", "\\|") for col in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _sections(breakdown: dict[str, list[dict]]) -> list[tuple[str, list[dict], list[str]]]:
    """The breakdown tables a report has: (title, rows, columns)."""
    out = []
    if breakdown.get("per_type"):
        out.append(("Per entity type", breakdown["per_type"], list(TYPE_COLUMNS)))
    if breakdown.get("per_language"):
        rows = breakdown["per_language"]
        out.append(("Per language", rows, _columns(rows, ("run", "dataset", "language"))))
    return out


def render_md(
    compare: list[dict], grid: list[dict], env: dict, breakdown: dict[str, list[dict]] | None = None
) -> str:
    parts = ["# Kiln report", "", "## Accuracy and speed", "", _md_table(compare, COMPARE_COLUMNS)]
    for title, rows, columns in _sections(breakdown or {}):
        parts += ["", f"## {title}", "", _md_table(rows, columns)]
    if grid:
        parts += ["", "## Batch x sequence length", "", _md_table(grid, GRID_COLUMNS)]
    parts += ["", "## Environment", "", _md_table(environment_rows(env), ENVIRONMENT_COLUMNS)]
    return "\n".join(parts) + "\n"


def render_csv(
    compare: list[dict], grid: list[dict], breakdown: dict[str, list[dict]] | None = None
) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["table", *COMPARE_COLUMNS])
    for row in compare:
        writer.writerow(["comparison", *(row.get(c) for c in COMPARE_COLUMNS)])
    for title, rows, columns in _sections(breakdown or {}):
        name = title.lower().replace(" ", "_")
        writer.writerow(["table", *columns])
        for row in rows:
            writer.writerow([name, *(row.get(c) for c in columns)])
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
        "<tr>" + "".join(f"<td>{html.escape(_fmt(row.get(c), c))}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(
    compare: list[dict], grid: list[dict], env: dict, breakdown: dict[str, list[dict]] | None = None
) -> str:
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
    for title, rows, columns in _sections(breakdown or {}):
        parts += [f"<h2>{html.escape(title)}</h2>", _html_table(rows, columns)]
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
        _html_table(environment_rows(env), ENVIRONMENT_COLUMNS),
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
    breakdown = breakdown_rows(records)
    if fmt == "md":
        text = render_md(compare, grid, env, breakdown)
    elif fmt == "csv":
        text = render_csv(compare, grid, breakdown)
    elif fmt == "json":
        text = json.dumps(
            {"comparison": compare, "grid": grid, "environment": env} | breakdown,
            indent=2,
            default=str,
        )
    else:
        text = render_html(compare, grid, env, breakdown)
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
