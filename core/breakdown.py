"""The breakdown tables and interval texts every viewer prints the same way.

The seeds publish breakdowns: InfoXLM's XNLI table is accuracy per language beside the
paper's figure per language; NER guides report per-type precision, recall and F1.
These functions turn a stored result into those rows (plain values, intervals beside
them), so ``kiln show``, ``kiln report`` and the app agree on every figure and label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kiln_lab.core.result import AccuracyMetrics, PublishedFigure


def interval_text(interval: Mapping[str, Any] | None, digits: int = 4) -> str:
    """``[low, high]``, or an empty string where there is no interval."""
    if not interval or interval.get("low") is None or interval.get("high") is None:
        return ""
    return f"[{float(interval['low']):.{digits}f}, {float(interval['high']):.{digits}f}]"


def figure_text(metrics: AccuracyMetrics, name: str, digits: int = 4) -> str | None:
    """A figure with its interval, ``0.7389 [0.7221, 0.7542]``; None if the run lacks it."""
    value = metrics.value(name)
    if value is None:
        return None
    spread = interval_text(metrics.interval(name), digits)
    return f"{value:.{digits}f} {spread}".strip()


def per_type_rows(metrics: AccuracyMetrics) -> list[dict[str, Any]]:
    """One row per entity type: P, R, F1 (each with its interval where stored), support."""
    per_type = metrics.per_type or {}
    spreads = (metrics.intervals or {}).get("per_type") or {}
    rows = []
    for name, score in sorted(per_type.items()):
        own = spreads.get(name) or {}
        rows.append(
            {
                "type": name,
                "precision": score.precision,
                "precision_interval": interval_text(own.get("precision")),
                "recall": score.recall,
                "recall_interval": interval_text(own.get("recall")),
                "f1": score.f1,
                "f1_interval": interval_text(own.get("f1")),
                "support": score.support,
            }
        )
    return rows


def per_language_rows(
    metrics: AccuracyMetrics,
    references: Sequence[PublishedFigure] = (),
    *,
    comparable: bool = False,
) -> list[dict[str, Any]]:
    """The XNLI table: accuracy per language with its interval, and each published
    per-language figure beside it (``published_<runtime>``); a delta only when
    ``comparable`` (the run evaluated the very data those figures were measured on)."""
    ours = metrics.per_language or {}
    published = [r for r in references if r.per_language and r.metric == "accuracy"]
    rows = []
    for language in sorted(ours):
        row = ours[language]
        out: dict[str, Any] = {
            "language": language,
            "count": row.get("count"),
            "accuracy": row.get("accuracy"),
            "interval": interval_text(row.get("interval")),
        }
        for ref in published:
            label = ref.runtime or ref.source or "published"
            value = (ref.per_language or {}).get(language)
            out[f"published_{label}"] = value
            if comparable and value is not None and row.get("accuracy") is not None:
                out[f"delta_{label}"] = row["accuracy"] - value
        rows.append(out)
    return rows


def stop_note(metrics: AccuracyMetrics) -> str | None:
    """How an early-stopped evaluation ended, in one line."""
    stop = metrics.early_stop
    if not stop:
        return None
    return (
        f"stopped early after {stop.get('after'):,} of {stop.get('of'):,} examples: the "
        f"whole split's {str(stop.get('metric', '')).replace('_', ' ')} lies in "
        f"{interval_text(stop.get('interval'))} "
        + (
            "(stopped from the app)"
            if stop.get("requested")
            else f"(narrower than {stop.get('width')})"
        )
    )


def paired_note(metrics: AccuracyMetrics, precision: str | None = None) -> str | None:
    """The paired difference from fp32 on the same examples, in one line."""
    paired = metrics.paired
    if not paired or paired.get("difference") is None:
        return None
    interval = paired.get("interval") or {}
    low, high = interval.get("low"), interval.get("high")
    spread = f" [{low:+.4f}, {high:+.4f}]" if low is not None and high is not None else ""
    verdict = "differs from fp32" if paired.get("distinguishable_from_zero") else "within noise"
    budget = (paired.get("budget") or {}).get("verdict")
    return (
        f"{precision or 'build'} − fp32 {paired.get('metric', '')}: "
        f"{paired['difference']:+.4f}{spread} on {paired.get('examples'):,} examples "
        f"({interval.get('method', '')}): {verdict}" + (f"; budget: {budget}" if budget else "")
    )
