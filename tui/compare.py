"""Side-by-side comparison of runs: the fp32 / fp16 / int8 tables vendor guides print
by hand, with every figure's difference from the first run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rich.text import Text

from kiln_lab.core.result import RunResult
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
"""(result section, figure, label, whether higher is better)."""


def _figure(result: RunResult, section: str, key: str) -> Any:
    part = getattr(result, section)
    return getattr(part, key) if part is not None else None


def _plain(value: Any) -> Text:
    return Text(fmt.DASH if value in (None, "") else str(value))


def compare_rows(records: Sequence[Any]) -> list[tuple[str, list[Text]]]:
    """Rows of (label, one cell per run); cells after the first carry their delta."""
    rows: list[tuple[str, list[Text]]] = []
    results = [RunResult.from_dict(r.result) for r in records]

    def row(label: str, cell: Callable[[Any, RunResult], Text]) -> None:
        rows.append((label, [cell(r, result) for r, result in zip(records, results, strict=True)]))

    row("status", lambda r, _: Text(r.status, style=fmt.STATUS_STYLE.get(r.status, "")))
    row("model", lambda r, _: _plain(r.model))
    row("profile", lambda r, _: _plain(r.build[0]))
    row("precision", lambda r, _: Text(r.build[1], style="bold"))
    row("runtime", lambda _, result: _plain(result.runtime))
    row(
        "data",
        lambda r, result: _plain(
            f"{result.dataset}/{result.split} ({result.examples})" if result.dataset else r.dataset
        ),
    )
    row("batch · seq len", lambda _, result: _plain(f"{result.batch_size} · {result.seq_len}"))
    for key, label in ACCURACY:
        values = [result.metrics.value(key) if result.metrics else None for result in results]
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
        values = [_figure(result, group, key) for result in results]
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
    waste = [_figure(result, "throughput", "padding_waste") for result in results]
    if any(w is not None for w in waste):
        rows.append(("padding waste", [Text(fmt.percent(w)) for w in waste]))
    parity = [result.parity for result in results]
    if any(parity):
        rows.append(
            (
                "parity vs fp32",
                [
                    Text(
                        f"{str(p.status).upper()} max|Δ| {p.max_abs_diff or 0:.1e}"
                        if p
                        else fmt.DASH,
                        style={"pass": "green", "warn": "yellow", "fail": "red"}.get(
                            p.status if p else "", "dim"
                        ),
                    )
                    for p in parity
                ],
            )
        )
    seen: list[tuple[str, str]] = []
    for result in results:
        for ref in result.references:
            key = (str(ref.metric), str(ref.precision))
            if key not in seen:
                seen.append(key)
    for metric, precision in seen:
        cells = []
        for result in results:
            value = next(
                (
                    ref.value
                    for ref in result.references
                    if (str(ref.metric), str(ref.precision)) == (metric, precision)
                ),
                None,
            )
            cells.append(Text(fmt.metric(value), style="dim"))
        rows.append((f"card {metric} ({precision})", cells))
    return rows
