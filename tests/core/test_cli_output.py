"""Command-line output a script can rely on: the benchmark grid and per-type scores are
printed, tables are not cut when piped, and ``--json`` always prints one object."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from kiln_lab.core.result import RunResult
from kiln_lab.tui.cli import main
from kiln_lab.tui.format import run_speed
from kiln_lab.tui.render import grid_table, per_type_table, result_view, runs_table

DATA = Path(__file__).resolve().parent.parent / "data"


def _text(renderable: object, width: int = 200) -> str:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


def _result_with_grid() -> RunResult:
    data = json.loads((DATA / "results" / "fp32-torch.json").read_text())
    data["benchmark"] = {
        "cells": [
            {"batch_size": 1, "seq_len": 32, "samples_per_s": 1234.5, "latency": {"p99_ms": 2.25}},
            {"batch_size": 8, "seq_len": 32, "samples_per_s": 4321.0, "spread_pct": 4.0},
            {"batch_size": 1, "seq_len": 64, "samples_per_s": 600.0, "latency": {"p99_ms": 5.5}},
        ]
    }
    return RunResult.from_dict(data)


def test_grid_lists_every_cell_with_samples_and_p99() -> None:
    text = _text(grid_table(_result_with_grid()))
    assert "1,234.5/s · p99 2.2 ms" in text or "1,234.5/s · p99 2.3 ms" in text
    assert "4,321.0/s · p99 — (±4%)" in text
    assert "600.0/s · p99 5.5 ms" in text
    # batch 8 x seq 64 was not measured: shown as such, not as zero
    row8 = next(line for line in text.splitlines() if line.strip("│ ").startswith("8 "))
    assert "—" in row8.split("│")[-2]


def test_per_type_scores_shown_with_whatever_keys_the_result_holds() -> None:
    data = json.loads((DATA / "results" / "fp32-torch.json").read_text())
    per_type = data["metrics"]["per_type"]
    first = next(iter(per_type))
    per_type[first]["f1_interval"] = [0.5, 0.75]  # a key a newer Kiln writes
    per_type[first].pop("support", None)  # and one an older one did not
    text = _text(per_type_table(RunResult.from_dict(data)))
    for name, score in per_type.items():
        assert name in text
        assert f"{score['f1']:.4f}" in text
    assert "f1 interval" in text and "[0.5000, 0.7500]" in text
    whole = _text(result_view(RunResult.from_dict(data)))
    assert "Per entity type" in whole and "Benchmark" not in whole


def test_result_without_scores_or_grid_shows_only_the_summary() -> None:
    result = RunResult.from_dict({"model": "m", "perf_only": True})
    assert per_type_table(result) is None and grid_table(result) is None
    assert "performance-only" in _text(result_view(result))


def test_json_failure_prints_one_error_object(
    tiny_assets: Path, kiln_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--model", "no-such-model", "--json"])
    captured = capsys.readouterr()
    assert code == 1
    data = json.loads(captured.out)  # exactly one object: json.loads refuses trailing text
    assert "no model card named 'no-such-model'" in data["error"]
    assert data["hint"] and "kiln models" in data["hint"]
    assert data["kind"] == "ConfigError"
    assert "no-such-model" in captured.err  # people still see it on stderr


def test_json_usage_error_prints_one_error_object(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["runs", "--json", "--limit", "many"])
    captured = capsys.readouterr()
    assert code == 2
    data = json.loads(captured.out)
    assert "invalid int value" in data["error"] and "--help" in data["hint"]


def test_without_json_a_failure_prints_nothing_on_stdout(
    tiny_assets: Path, kiln_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", "nosuchrun"]) != 0
    captured = capsys.readouterr()
    assert captured.out == "" and "nosuchrun" in captured.err


def test_tables_are_not_cut_when_piped(tiny_assets: Path, kiln_home: Path) -> None:
    env = {**os.environ, "KILN_HOME": str(kiln_home), "NO_COLOR": "1", "COLUMNS": "40"}
    proc = subprocess.run(
        [sys.executable, "-m", "kiln_lab.tui.cli", "models"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "chinese-roberta-wwm-ext-chnsenticorp" in proc.stdout
    assert "sequence-classification" in proc.stdout
    assert "…" not in proc.stdout
    rows = [line for line in proc.stdout.splitlines() if "tiny-ner-bert" in line]
    assert len(rows) == 1  # one line per row, not wrapped either


@pytest.mark.slow
def test_kiln_bench_prints_the_grid(tiny_assets: Path, kiln_home: Path) -> None:
    env = {**os.environ, "KILN_HOME": str(kiln_home), "NO_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "kiln_lab.tui.cli", "bench", "--model", "tiny-ner-bert"]
        + ["--batch-sizes", "1,2", "--seq-lens", "16,32", "--iterations", "2"]
        + ["--trials", "1", "--warmup", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    grid = proc.stdout[proc.stdout.index("Benchmark: samples/s") :]
    rows = [line for line in grid.splitlines() if line.startswith("│")]
    assert [row.split("│")[1].strip() for row in rows] == ["1", "2"]
    assert all(row.count("/s · p99") == 2 for row in rows)


def test_a_benchmark_only_run_lists_its_fastest_cell_marked_as_grid() -> None:
    bench = _result_with_grid().to_dict()
    bench.pop("throughput", None)
    bench.pop("latency", None)
    assert run_speed(RunResult.from_dict(bench)) == ("4,321.0 (grid)", "—")
    evaluated = _result_with_grid()
    assert "(grid)" not in run_speed(evaluated)[0]
    assert run_speed(RunResult.from_dict({"model": "m"})) == ("—", "—")

    record = SimpleNamespace(
        id="r1",
        created=0.0,
        status="succeeded",
        model="m",
        profile="p",
        precision="int8",
        build=("p", "int8"),
        dataset="d",
        result={k: v for k, v in bench.items() if k != "metrics"},
    )
    assert "4,321.0 samples/s (grid best)" in _text(runs_table([record]), width=300)
