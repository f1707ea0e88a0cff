"""Reports: comparison rows with deltas and speed-ups, every format, paths confined."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from kiln_lab.core.report import comparison_rows, write_report
from kiln_lab.core.store import RunStore


def _run(store: RunStore, precision: str, metric: float, speed: float, cells=()) -> str:
    run_id = store.create_run(
        {
            "model": "m",
            "profile": "cpu-onnxruntime",
            "precision": precision,
            "dataset_label": "d:test",
        }
    )
    result = {
        "metrics": {"entity_f1": metric},
        "throughput": {"samples_per_s": speed},
        "latency": {"p99_ms": 10.0},
        "reference": [{"metric": "entity_f1", "value": 0.9, "precision": "fp32"}],
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
