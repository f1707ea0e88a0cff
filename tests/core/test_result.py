"""The typed run result: every stored shape reads, and writes back key for key."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from kiln_lab.core.baseline import baseline_for, fp32_baseline
from kiln_lab.core.benchmark import CellResult
from kiln_lab.core.events import BenchmarkCellMeasured
from kiln_lab.core.guard import GuardReport, GuardStep
from kiln_lab.core.metrics.classification import score_classification
from kiln_lab.core.metrics.ner import score_ner
from kiln_lab.core.parity import ParityReport
from kiln_lab.core.result import (
    AccuracyMetrics,
    BenchmarkCell,
    Latency,
    PublishedFigure,
    RunResult,
)

RESULTS = Path(__file__).resolve().parent.parent / "data" / "results"


def _json(value: dict) -> dict:
    """What the run store hands back: the producer's dict through JSON."""
    return json.loads(json.dumps(value, default=str))


def _round_trip(data: dict) -> dict:
    out = RunResult.from_dict(data).to_dict()
    assert out == data
    assert list(out) == list(data), "keys keep the producers' order"
    assert json.dumps(out) == json.dumps(data)
    return out


@pytest.mark.parametrize("name", sorted(p.name for p in RESULTS.glob("*.json")))
def test_results_stored_by_kiln_round_trip(name: str) -> None:
    data = json.loads((RESULTS / name).read_text())
    _round_trip(data)
    result = RunResult.from_dict(data)
    assert result.extra == {} and result.metrics is not None and result.metrics.extra == {}
    assert result.metrics.headline() == ("entity_f1", data["metrics"]["entity_f1"])
    assert result.throughput.samples_per_s == data["throughput"]["samples_per_s"]
    assert result.latency.p99_ms == data["latency"]["p99_ms"]
    assert result.data_key == (data["dataset"], data["split"])


def test_the_int8_result_reads_its_guard_quantization_and_parity() -> None:
    result = RunResult.from_dict(json.loads((RESULTS / "int8-onnxruntime.json").read_text()))
    assert result.quantization.recipe and len(result.quantization.calibration.sha256) == 64
    assert result.guard.last_step.within_budget is True
    assert result.parity.status == "pass"
    assert result.published("entity_f1") is not None


def test_an_external_result_reads_its_toolchain() -> None:
    result = RunResult.from_dict(json.loads((RESULTS / "fp32-external.json").read_text()))
    assert result.toolchain.compile.command[1:3] == ("-m", "onnxruntime.transformers.optimizer")
    assert result.toolchain.compile.cached is False


def _producer_shaped() -> dict:
    """Every optional section, each built by the class that writes it today."""
    ner = score_ner([["B-PER", "I-PER", "O"]], [["B-PER", "I-PER", "O"]]).to_dict()
    cell = CellResult(1, 32, 100.0, [99.0, 101.0], 2.0, {"p50_ms": 1.0, "p99_ms": 2.0})
    roofline = {"achieved_gflops": 1.5, "peak_gflops": 90.0, "percent_of_peak": 1.7}
    guard = GuardReport(
        "entity_f1", 1.0, 0.9, 500.0, [GuardStep(("a",), 0.89, 1.0, 800.0, True)], [("a", 0.3)]
    )
    return _json(
        {
            "guard": guard.to_dict(),
            "quantization": {
                "recipe": "static",
                "source": "/m.onnx",
                "calibration": {"samples": 32, "sha256": "ab" * 32, "source": "train"},
                "path": "/q.onnx",
                "cached": False,
                "quantized_nodes": 12,
            },
            "runtime_settings": {"runtime": "onnxruntime", "providers": ["CPUExecutionProvider"]},
            "parity": ParityReport(8, 80, 1e-3, 1e-4, 0.999, 1.0, 0.3, "pass").to_dict(),
            "metrics": ner,
            "throughput": {"samples": 8, "samples_per_s": 4.0, "tokens_per_s": 40.0},
            "latency": {"count": 0, "mean_ms": math.nan, "p50_ms": 1.0, "max_ms": math.nan},
            "resources": {"cpu_percent_mean": 90.0},
            "truncated": 0,
            "benchmark": {
                "plan": {"batch_sizes": (1,), "seq_lens": (32,), "warmup": 3},
                "cells": [cell.to_dict() | roofline],
                "peaks": {"fp32": 90.0, "int8": 300.0},
            },
            "run_id": "r",
            "precision": "int8",
            "perf_only": False,
            "reference": [
                {
                    "metric": "entity_f1",
                    "value": 0.9,
                    "precision": "fp32",
                    "runtime": "",
                    "source": "card",
                    "note": "",
                    "measured": None,
                    "delta": None,
                }
            ],
            "stages": {"resolve": 0.1},
        }
    )


def test_every_section_the_producers_write_round_trips() -> None:
    data = _producer_shaped()
    out = RunResult.from_dict(data).to_dict()
    # nan != nan: compare the JSON text, which writes NaN the same on both sides.
    assert json.dumps(out) == json.dumps(data)
    result = RunResult.from_dict(data)
    (cell,) = result.benchmark_cells
    assert cell.shape == (1, 32) and cell.latency.p99_ms == 2.0 and cell.percent_of_peak == 1.7
    assert result.guard.sensitivity[0].node == "a"
    assert result.reference[0].measured is None


def test_a_performance_only_result_keeps_its_null_metrics() -> None:
    data = {"metrics": None, "throughput": {"samples_per_s": 5.0}, "perf_only": True}
    _round_trip(data)
    assert not RunResult.from_dict(data).scored
    # The evaluate stage writes both keys together, so speed without metrics means null.
    assert RunResult(throughput=RunResult.from_dict(data).throughput).to_dict() == {
        "metrics": None,
        "throughput": {"samples_per_s": 5.0},
    }
    assert "metrics" not in RunResult(run_id="r").to_dict()


def test_any_dict_round_trips_in_its_own_key_order() -> None:
    """Hand-written results (test fixtures, older Kilns) keep their order and gaps."""
    data = {
        "parity": {"status": "pass", "max_abs_diff": 2e-5},
        "reference": [{"metric": "entity_f1", "value": 0.5}],
        "throughput": {"samples_per_s": 1.0},
        "benchmark": {"plan": {"batch_sizes": [1]}},
    }
    _round_trip(data)


def test_classification_and_fp16_and_tool_cells() -> None:
    metrics = score_classification(["a", "b"], ["a", "a"], ["a", "b"]).to_dict()
    data = _json(
        {
            "quantization": {
                "recipe": "fp16",
                "source": "/m.onnx",
                "kept_fp32": ["LayerNormalization", "Softmax"],
                "path": "/h.onnx",
            },
            "metrics": metrics,
            "throughput": {"samples_per_s": 1.0},
            "benchmark": {
                "cells": [
                    {
                        "batch_size": 8,
                        "seq_len": 128,
                        "samples_per_s": 12.0,
                        "samples_per_s_trials": [12.0],
                        "spread_pct": 0.0,
                        "latency": {"p50_ms": 3.0, "p95_ms": 4.0},
                        "source": "tool",
                        "command": ["vamc", "--run"],
                    }
                ],
                "tool": True,
            },
        }
    )
    _round_trip(data)
    result = RunResult.from_dict(data)
    assert result.metrics.headline() == ("accuracy", 0.5)
    assert result.metrics.per_class["b"].support == 1
    assert result.quantization.kept_fp32 == ("LayerNormalization", "Softmax")
    assert result.benchmark_cells[0].latency.extra == {"p95_ms": 4.0}


@pytest.mark.parametrize(
    "data",
    [
        None,
        {},
        {"metrics": {"entity_f1": 0.5}},  # an old run: no dataset, no speed, no report keys
        {"metrics": {"accuracy": 1}, "throughput": {"samples_per_s": 3}, "latency": {"p99_ms": 1}},
        {"benchmark": {"cells": [{"batch_size": 4, "seq_len": 16, "samples_per_s": 9.5}]}},
        {"reference": [{"metric": "entity_f1", "value": 0.5, "measured": 0.4, "delta": -0.1}]},
        {"from_a_newer_kiln": {"x": 1}, "metrics": {"entity_f1": 0.5, "final": True}},
        {"parity": "garbled", "benchmark": {"cells": "garbled"}, "reference": 3},
    ],
)
def test_old_partial_and_unknown_results_never_crash(data: dict | None) -> None:
    result = RunResult.from_dict(data)
    out = result.to_dict()
    assert out == (data or {})
    assert result.benchmark_cells is not None and isinstance(result.references, tuple)


def test_unknown_keys_are_kept_beside_known_ones() -> None:
    result = RunResult.from_dict({"from_a_newer_kiln": 1, "metrics": {"entity_f1": 0.5, "x": 2}})
    assert result.extra == {"from_a_newer_kiln": 1}
    assert result.metrics.value("x") == 2 and result.metrics.value("entity_f1") == 0.5
    assert result.metrics.value("missing") is None


def test_ints_stay_ints_so_json_output_does_not_change() -> None:
    out = RunResult.from_dict({"latency": {"p99_ms": 1}, "examples": 200}).to_dict()
    assert json.dumps(out) == '{"latency": {"p99_ms": 1}, "examples": 200}'


def test_a_live_cell_event_reads_as_a_result_cell() -> None:
    event = BenchmarkCellMeasured("benchmark", 8, 64, 250.0, {"p50_ms": 1.0}, 3.0, "tool")
    cell = BenchmarkCell.from_event(event)
    assert cell.shape == (8, 64) and cell.samples_per_s == 250.0
    assert cell.latency == Latency(p50_ms=1.0) and cell.source == "tool"


def test_built_in_code_types_write_the_same_keys() -> None:
    figure = PublishedFigure(metric="accuracy", value=0.9, precision="fp32")
    assert figure.to_dict() == {
        "metric": "accuracy",
        "value": 0.9,
        "precision": "fp32",
        "measured": None,
        "delta": None,
    }
    assert AccuracyMetrics(accuracy=0.8).headline() == ("accuracy", 0.8)


# -- the fp32 baseline ------------------------------------------------------------------------
def run(
    run_id: str,
    *,
    status: str = "succeeded",
    precision: str = "fp32",
    model: str = "m",
    examples: int | None = 200,
    dataset: str | None = "peoples-daily-1998",
    metrics: dict | None = None,
    perf_only: bool = False,
    speed: float = 100.0,
    config: dict | None = None,
) -> SimpleNamespace:
    result = {
        "metrics": {"entity_f1": 0.8} if metrics is None and not perf_only else metrics,
        "throughput": {"samples_per_s": speed},
        "dataset": dataset,
        "split": "test",
        "examples": examples,
        "perf_only": perf_only,
    }
    result = {k: v for k, v in result.items() if v is not None or k == "metrics"}
    return SimpleNamespace(
        id=run_id,
        status=status,
        precision=precision,
        model=model,
        result=result,
        config=config or {},
    )


class TestFp32Baseline:
    KEY = ("peoples-daily-1998", "test")

    def test_the_first_matching_candidate_wins(self) -> None:
        runs = [run("new"), run("old")]
        assert fp32_baseline(runs, model="m", dataset=self.KEY).id == "new"

    @pytest.mark.parametrize(
        "other",
        [
            {"status": "failed"},
            {"precision": "int8"},
            {"model": "other"},
            {"dataset": "shopping-reviews"},
            {"examples": 40},
            {"perf_only": True},
            {"metrics": {}},
        ],
    )
    def test_only_comparable_runs_count(self, other: dict) -> None:
        found = fp32_baseline([run("x", **other)], model="m", dataset=self.KEY, examples=200)
        assert found is None

    def test_a_run_is_never_its_own_baseline(self) -> None:
        runs = [run("self"), run("prev")]
        assert fp32_baseline(runs, model="m", dataset=None, exclude="self").id == "prev"

    def test_a_performance_only_run_compares_with_any_fp32_run_of_its_data(self) -> None:
        runs = [run("fp32-perf", perf_only=True)]
        assert fp32_baseline(runs, model="m", dataset=self.KEY, scored=False).id == "fp32-perf"
        target = run("int8-perf", precision="int8", perf_only=True)
        assert baseline_for(target, runs).id == "fp32-perf"

    def test_a_run_without_a_result_uses_its_configs_data(self) -> None:
        candidate = run("c", dataset=None, config={"dataset": "d", "split": "dev"})
        assert fp32_baseline([candidate], model="m", dataset=("d", "dev")).id == "c"
        assert fp32_baseline([candidate], model="m", dataset=("d", "test")) is None

    def test_the_selection_comes_before_the_history(self) -> None:
        target = run("int8", precision="int8")
        selected, newer = run("selected"), run("newer-in-history")
        assert baseline_for(target, [target, selected], [newer, selected]).id == "selected"
        assert baseline_for(target, [target], [newer, selected]).id == "newer-in-history"
        assert baseline_for(target, [target], []) is None
