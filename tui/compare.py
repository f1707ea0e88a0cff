"""Side-by-side comparison of runs: the fp32 / fp16 / int8 tables vendor guides print
by hand, with every figure's difference from the first run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rich.text import Text

from kiln_lab.tui import format as fmt

ACCURACY = (
    ("entity_f1", "entity F1"),
    ("entity_precision", "entity precision"),
    ("entity_recall", "entity recall"),
    ("token_accuracy", "token accuracy"),
    ("accuracy", "accuracy"),
    ("macro_f1", "macro-F1"),
)
SPEED = (
    ("throughput", "samples_per_s", "samples/s", True),
    ("throughput", "tokens_per_s", "tokens/s", True),
    ("latency", "p50_ms", "latency p50 ms", False),
    ("latency", "p90_ms", "latency p90 ms", False),
    ("latency", "p99_ms", "latency p99 ms", False),
)


def _get(record: Any, *path: str) -> Any:
    value: Any = record.result or {}
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _plain(value: Any) -> Text:
    return Text(fmt.DASH if value in (None, "") else str(value))


def compare_rows(records: Sequence[Any]) -> list[tuple[str, list[Text]]]:
    """Rows of (label, one cell per run); cells after the first carry their delta."""
    rows: list[tuple[str, list[Text]]] = []

    def row(label: str, cell: Callable[[Any], Text]) -> None:
        rows.append((label, [cell(r) for r in records]))

    row("status", lambda r: Text(r.status, style=fmt.STATUS_STYLE.get(r.status, "")))
    row("model", lambda r: _plain(r.model))
    row("profile", lambda r: _plain(r.profile))
    row("precision", lambda r: Text(r.precision, style="bold"))
    row("runtime", lambda r: _plain(_get(r, "runtime")))
    row(
        "data",
        lambda r: _plain(
            f"{_get(r, 'dataset')}/{_get(r, 'split')} ({_get(r, 'examples')})"
            if _get(r, "dataset")
            else r.dataset
        ),
    )
    row("batch · seq len", lambda r: _plain(f"{_get(r, 'batch_size')} · {_get(r, 'seq_len')}"))
    for key, label in ACCURACY:
        values = [_get(r, "metrics", key) for r in records]
        if all(v is None for v in values):
            continue
        first = values[0]
        cells = []
        for i, value in enumerate(values):
            cell = Text(fmt.metric(value), style="bold" if key in ("entity_f1", "accuracy") else "")
            if i and value is not None and first is not None:
                cell.append(" ")
                cell.append_text(fmt.delta(value - first))
            cells.append(cell)
        rows.append((label, cells))
    for group, key, label, higher_better in SPEED:
        values = [_get(r, group, key) for r in records]
        if all(v is None for v in values):
            continue
        first = values[0]
        cells = []
        for i, value in enumerate(values):
            cell = Text(fmt.number(value))
            if i and value and first:
                cell.append(" ")
                speedup = value / first if higher_better else first / value
                cell.append_text(fmt.ratio(speedup))
            cells.append(cell)
        rows.append((label, cells))
    waste = [_get(r, "throughput", "padding_waste") for r in records]
    if any(w is not None for w in waste):
        rows.append(("padding waste", [Text(fmt.percent(w)) for w in waste]))
    parity = [_get(r, "parity") for r in records]
    if any(parity):
        rows.append(
            (
                "parity vs fp32",
                [
                    Text(
                        f"{p['status'].upper()} max|Δ| {p.get('max_abs_diff', 0):.1e}"
                        if p
                        else fmt.DASH,
                        style={"pass": "green", "warn": "yellow", "fail": "red"}.get(
                            (p or {}).get("status", ""), "dim"
                        ),
                    )
                    for p in parity
                ],
            )
        )
    seen: list[tuple[str, str]] = []
    for record in records:
        for ref in _get(record, "reference") or []:
            key = (str(ref.get("metric")), str(ref.get("precision")))
            if key not in seen:
                seen.append(key)
    for metric, precision in seen:
        cells = []
        for record in records:
            value = next(
                (
                    ref.get("value")
                    for ref in _get(record, "reference") or []
                    if (ref.get("metric"), ref.get("precision")) == (metric, precision)
                ),
                None,
            )
            cells.append(Text(fmt.metric(value), style="dim"))
        rows.append((f"card {metric} ({precision})", cells))
    return rows
