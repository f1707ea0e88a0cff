"""The matrix table: one row per cell, as ``kiln matrix show`` and the app print it.

Accuracy per precision with its delta against fp32 and against the card's published
figure, samples/s and latency p99 per cell, the host that ran it, and for a cell that
did not run, why. The fp32 baseline of a cell is the fp32 cell of the same model, data
and profile in this matrix, else any fp32 cell of the model and data in it, else the
newest in the store (:mod:`kiln_lab.core.baseline`), so an int8 cell on ONNX Runtime is
measured against fp32 on ONNX Runtime. Per model and data, the fastest cell whose
accuracy stays within the matrix's budget of its fp32 baseline is marked ``fastest``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kiln_lab.core.baseline import baseline_for
from kiln_lab.core.matrix.cells import cell_status
from kiln_lab.core.store import RunRecord
from kiln_lab.core.store_matrix import CellRecord

COLUMNS = (
    "position",
    "model",
    "dataset",
    "profile",
    "precision",
    "padding",
    "status",
    "metric",
    "value",
    "delta_vs_fp32",
    "published",
    "delta_vs_published",
    "samples_per_s",
    "latency_p99_ms",
    "host",
    "run",
    "fastest",
    "reason",
)


def _headline(record: RunRecord | None) -> tuple[str | None, float | None]:
    if record is None or record.status != "succeeded":
        return None, None
    result = record.run_result
    headline = result.metrics.headline() if result.metrics is not None else None
    return headline if headline is not None else (None, None)


def within_budget(delta: float | None, base_value: float | None, budget: float, mode: str) -> bool:
    """``delta`` (0-1 scale) costs no more than the budget (points, or percent of fp32)."""
    if delta is None:
        return False
    points = budget if mode == "absolute" else budget / 100.0 * (base_value or 0.0) * 100.0
    return delta * 100.0 >= -points - 1e-9


def matrix_rows(store: Any, matrix_id: str) -> list[dict[str, Any]]:
    """Every cell of the matrix as a row of :data:`COLUMNS`."""
    matrix = store.matrix(matrix_id)
    budget = float(matrix.spec.get("accuracy_budget", 1.0))
    mode = str(matrix.spec.get("budget_mode", "absolute"))
    cells = store.matrix_cells(matrix.id)
    statuses = [cell_status(store, cell) for cell in cells]
    records: list[RunRecord | None] = [
        store.run(cell.run_id) if cell.run_id else None for cell in cells
    ]
    ran = [r for r in records if r is not None]
    history: list[RunRecord] | None = None
    rows = []
    for cell, status, record in zip(cells, statuses, records, strict=True):
        row = _row(cell, status, record)
        if record is not None and row["value"] is not None:
            same_profile = [r for r in ran if r.profile == record.profile]
            base = baseline_for(record, same_profile, ran)
            if base is None:
                history = history if history is not None else store.runs()
                base = baseline_for(record, history)
            _, base_value = _headline(base)
            if record.precision == "fp32":
                row["delta_vs_fp32"] = 0.0
                row["fp32_run"] = record.id
            elif base is not None and base_value is not None:
                row["delta_vs_fp32"] = row["value"] - base_value
                row["fp32_run"] = base.id
            row["within_budget"] = within_budget(row["delta_vs_fp32"], base_value, budget, mode)
        rows.append(row)
    _mark_fastest(rows)
    return rows


def _row(cell: CellRecord, status: str, record: RunRecord | None) -> dict[str, Any]:
    metric, value = _headline(record)
    result = record.run_result if record is not None and record.status == "succeeded" else None
    published = result.published(metric) if result is not None and metric else None
    error = (record.error or {}) if record is not None else {}
    reason = cell.reason
    if reason is None and status not in ("succeeded", "running", "starting", "queued", "pending"):
        reason = ": ".join(p for p in (error.get("title"), error.get("message")) if p) or None
    return {
        "position": cell.position,
        "model": cell.cell.get("model"),
        "dataset": (result.dataset if result is not None and result.dataset else None)
        or cell.cell.get("dataset")
        or (record.dataset if record is not None else None),
        "profile": cell.cell.get("profile"),
        "precision": cell.cell.get("precision"),
        "padding": cell.cell.get("padding"),
        "status": status,
        "metric": metric,
        "value": value,
        "delta_vs_fp32": None,
        "fp32_run": None,
        "published": published.value if published else None,
        "delta_vs_published": value - published.value
        if published is not None and published.value is not None and value is not None
        else None,
        "samples_per_s": result.throughput.samples_per_s
        if result is not None and result.throughput
        else None,
        "latency_p99_ms": result.latency.p99_ms if result is not None and result.latency else None,
        "host": cell.host,
        "node_id": cell.node_id,
        "attempts": cell.attempts,
        "run": cell.run_id,
        "within_budget": None,
        "fastest": False,
        "reason": reason,
    }


def _mark_fastest(rows: Sequence[dict[str, Any]]) -> None:
    groups: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for row in rows:
        if row["within_budget"] and row["samples_per_s"]:
            groups.setdefault((row["model"], row["dataset"]), []).append(row)
    for group in groups.values():
        max(group, key=lambda r: r["samples_per_s"])["fastest"] = True


def matrix_json(store: Any, matrix_id: str) -> dict[str, Any]:
    """The matrix and its rows, as ``kiln matrix --json`` prints them."""
    matrix = store.matrix(matrix_id)
    rows = matrix_rows(store, matrix.id)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return {
        "matrix_id": matrix.id,
        "spec": matrix.spec,
        "cluster": matrix.cluster,
        "counts": counts,
        "cells": rows,
        "fastest": [
            {k: row[k] for k in ("model", "dataset", "profile", "precision", "samples_per_s")}
            for row in rows
            if row["fastest"]
        ],
    }


def matrix_run_ids(store: Any, matrix_id: str) -> list[str]:
    """The runs of a matrix (for ``kiln report MATRIX_ID``)."""
    return [cell.run_id for cell in store.matrix_cells(matrix_id) if cell.run_id]
