"""Reports: comparison rows with deltas and speed-ups, every format, paths confined."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from kiln_lab.core.report import comparison_rows, write_report
from kiln_lab.core.store import RunStore


def _run(
    store: RunStore,
    precision: str,
    metric: float,
    speed: float,
    cells=(),
    *,
    dataset: str = "d",
    limit: int | None = None,
    extra: dict | None = None,
) -> str:
    run_id = store.create_run(
        {
            "model": "m",
            "profile": "cpu-onnxruntime",
            "precision": precision,
            "dataset_label": f"{dataset}:test",
            "limit": limit,
        }
    )
    result = {
        "metrics": {"entity_f1": metric, "complete": True} | (extra or {}),
        "throughput": {"samples_per_s": speed},
        "latency": {"p99_ms": 10.0},
        "dataset": dataset,
        "split": "test",
        "reference": [
            {"metric": "entity_f1", "value": 0.9, "precision": "fp32", "dataset": "d:test"}
        ],
        "quantization": {"calibration": {"sha256": "ab" * 32}} if precision == "int8" else {},
        "environment": {"python": "3.11", "cpu": {"model": "test cpu"}, "packages": {}},
        "benchmark": {
            "cells": [
                {
                    "batch_size": b,
                    "seq_len": s,
                    "samples_per_s": 100.0,
                    "spread_pct": 2.0,
                    "latency": {"p50_ms": 1.0, "p99_ms": 2.0},
                    "percent_of_peak": 10.0,
                }
                for b, s in cells
            ]
        },
    }
    store.set_status(run_id, "succeeded", result=result)
    return run_id


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[RunStore, str, str]:
    store = RunStore(tmp_path / "runs.sqlite")
    fp32 = _run(store, "fp32", 0.95, 100.0)
    int8 = _run(store, "int8", 0.94, 250.0, cells=[(1, 32), (8, 64)])
    return store, fp32, int8


def test_honest_labels_and_plain_values(tmp_path: Path) -> None:
    """Issue 15 items 4 and 8: the card delta only on the card figure's own data, in full;
    every row names its dataset; values unsigned, deltas signed; intervals; environment
    as a table; per-type rows."""
    store = RunStore(tmp_path / "runs.sqlite")
    per_type = {"PER": {"precision": 0.8, "recall": 0.7, "f1": 0.75, "support": 40}}
    spreads = {
        "entity_f1": {"low": 0.91, "high": 0.95, "method": "bootstrap"},
        "per_type": {"PER": {"f1": {"low": 0.6, "high": 0.85}}},
    }
    full = _run(store, "fp32", 0.93, 100.0, extra={"per_type": per_type, "intervals": spreads})
    other = _run(store, "fp32", 0.93, 100.0, dataset="mine.bio")
    limited = _run(store, "fp32", 0.93, 100.0, limit=50)
    stopped = _run(store, "fp32", 0.93, 100.0, extra={"complete": False, "early_stop": {"a": 1}})
    rows = {
        r["run"]: r
        for r in comparison_rows(
            [store.run(i) for i in (full, other, limited, stopped)], store.runs()
        )
    }
    assert rows[full]["delta_vs_published"] == pytest.approx(0.03)
    assert rows[full]["evaluation"] == "final" and rows[full]["interval"] == "[0.9100, 0.9500]"
    assert rows[other]["delta_vs_published"] is None and rows[other]["dataset"] == "mine.bio/test"
    assert rows[limited]["evaluation"] == "limited" and rows[limited]["delta_vs_published"] is None
    assert rows[stopped]["evaluation"] == "stopped" and rows[stopped]["delta_vs_published"] is None
    # A newer fp32 run that stopped early is not a baseline: it did not see the whole split.
    int8 = _run(store, "int8", 0.92, 200.0)
    (row,) = comparison_rows([store.run(int8)], store.runs())
    assert row["fp32_run"] == limited or row["fp32_run"] == full
    assert row["fp32_run"] != stopped
    text = write_report([store.run(full)], store.runs(), "md", tmp_path / "out").read_text()
    assert "+0.9300" not in text and "| 0.9300 |" in text
    assert "| dataset |" in text and "| d/test |" in text
    assert "## Per entity type" in text and "[0.6000, 0.8500]" in text
    assert "| run | runtime | settings | cpu |" in text and "test cpu" in text
    assert "{'" not in text  # no raw dict dumps


def test_deltas_and_speedup(two_runs: tuple[RunStore, str, str]) -> None:
    store, fp32, int8 = two_runs
    rows = comparison_rows([store.run(int8)], store.runs())
    (row,) = rows
    assert row["fp32_run"] == fp32
    assert row["delta_vs_fp32"] == pytest.approx(-0.01)
    assert row["delta_vs_published"] == pytest.approx(0.04)
    assert row["speedup_vs_fp32"] == pytest.approx(2.5)


@pytest.mark.parametrize("fmt", ["md", "csv", "json", "html"])
def test_every_format(fmt: str, two_runs: tuple[RunStore, str, str], tmp_path: Path) -> None:
    store, fp32, int8 = two_runs
    path = write_report([store.run(fp32), store.run(int8)], store.runs(), fmt, tmp_path / "out")
    text = path.read_text()
    assert path.parent == (tmp_path / "out").resolve()
    if fmt == "json":
        data = json.loads(text)
        assert len(data["comparison"]) == 2 and len(data["grid"]) == 2
        assert data["environment"][int8]["calibration"]["sha256"] == "ab" * 32
    elif fmt == "csv":
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0][0] == "table" and any(r[0] == "grid" for r in rows)
    elif fmt == "html":
        assert "<svg" in text and "Batch x sequence length" in text
    else:
        assert "| run |" in text and "test cpu" in text


def test_report_cli_writes_files(
    two_runs: tuple[RunStore, str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kiln_lab.tui.cli import main

    store, fp32, int8 = two_runs
    monkeypatch.setenv("KILN_HOME", str(store.path.parent))
    out = tmp_path / "reports"
    assert (
        main(["report", fp32, int8, "--format", "md", "--format", "html", "--out", str(out)]) == 0
    )
    assert (out / "report.md").exists() and (out / "report.html").exists()
