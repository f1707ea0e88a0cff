"""Breakdown tables: per-language accuracy beside the card's per-language figures, per-type
rows with intervals, and what `kiln show` prints of them."""

from __future__ import annotations

import numpy as np
from rich.console import Console

from kiln_lab.core.breakdown import figure_text, paired_note, per_language_rows, stop_note
from kiln_lab.core.metrics.outcomes import ClassificationOutcomes
from kiln_lab.core.result import RunResult


def _xnli_result(dataset: str) -> RunResult:
    outcomes = ClassificationOutcomes()
    rng = np.random.default_rng(0)
    languages = ["en"] * 60 + ["sw"] * 40
    correct = np.r_[rng.random(60) < 0.85, rng.random(40) < 0.6]
    outcomes.add(range(100), correct, languages)
    per_language = outcomes.per_language()
    assert outcomes.live_per_language() == per_language  # the live table, from tallies
    return RunResult.from_dict(
        {
            "metrics": {
                "accuracy": float(correct.mean()),
                "count": 100,
                "complete": True,
                "per_language": per_language,
                "intervals": outcomes.intervals(),
            },
            "dataset": dataset,
            "split": "test",
            "precision": "fp32",
            "reference": [
                {
                    "metric": "accuracy",
                    "value": 0.76,
                    "precision": "fp32",
                    "runtime": "paper",
                    "dataset": "xnli:test",
                    "per_language": {"en": 0.864, "sw": 0.675},
                }
            ],
        }
    )


def test_per_language_rows_sit_beside_the_published_figures() -> None:
    result = _xnli_result("mine.tsv")
    assert result.metrics is not None
    rows = per_language_rows(result.metrics, result.references)
    assert [r["language"] for r in rows] == ["en", "sw"]
    assert rows[0]["count"] == 60 and rows[0]["published_paper"] == 0.864
    assert rows[1]["interval"].startswith("[") and "delta_paper" not in rows[1]
    same = per_language_rows(result.metrics, result.references, comparable=True)
    assert same[1]["delta_paper"] == rows[1]["accuracy"] - 0.675


def test_kiln_show_prints_intervals_and_the_language_table() -> None:
    from kiln_lab.tui.render import result_view

    result = _xnli_result("mine.tsv")
    console = Console(width=200, record=True)
    console.print(result_view(result))
    text = console.export_text()
    assert "Per language" in text and "published paper" in text and "0.8640" in text
    assert figure_text(result.metrics, "accuracy") in text  # the value with its interval
    assert "on xnli:test" in text and "Δ" not in text  # another file: no delta


def test_notes_for_a_stopped_and_a_paired_run() -> None:
    metrics = RunResult.from_dict(
        {
            "metrics": {
                "entity_f1": 0.74,
                "early_stop": {
                    "after": 3072,
                    "of": 4471,
                    "width": 0.05,
                    "metric": "entity_f1",
                    "interval": {"low": 0.72, "high": 0.756},
                },
                "paired": {
                    "metric": "entity_f1",
                    "difference": 0.0011,
                    "interval": {"low": 0.0001, "high": 0.0023, "method": "paired-bootstrap"},
                    "examples": 4471,
                    "distinguishable_from_zero": True,
                    "budget": {"verdict": "within-budget"},
                },
            }
        }
    ).metrics
    assert metrics is not None
    assert "after 3,072 of 4,471" in stop_note(metrics)
    assert figure_text(metrics, "entity_f1") == "0.7400 [0.7200, 0.7560]"
    note = paired_note(metrics, "int8")
    assert note.startswith("int8 − fp32 entity_f1: +0.0011 [+0.0001, +0.0023]")
    assert "within-budget" in note
