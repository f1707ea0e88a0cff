"""Benchmark grid, trials and spread, concurrency, roofline arithmetic."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from kiln_lab.core.benchmark import BenchmarkPlan, run_cell, synthetic_batch
from kiln_lab.core.errors import ConfigError
from kiln_lab.core.events import StageSkipped
from kiln_lab.core.pipeline import run_pipeline
from kiln_lab.core.roofline import achieved, encoder_flops_per_sample
from kiln_lab.core.runconfig import RunConfig


def test_bert_base_flops_match_the_textbook_figure() -> None:
    config = SimpleNamespace(hidden_size=768, intermediate_size=3072, num_hidden_layers=12)
    per_token = encoder_flops_per_sample(config, 1, 0)
    # 2 x ~85M encoder weights per token, plus a little attention.
    assert 169e6 < per_token < 171e6
    result = achieved(
        config,
        2,
        samples_per_s=10,
        mean_seq_len=128,
        precision="int8",
        peaks={"fp32": 100.0, "int8": 400.0},
    )
    assert result["peak_gflops"] == 400.0
    assert result["percent_of_peak"] == pytest.approx(100 * result["achieved_gflops"] / 400)


def test_plan_validation() -> None:
    with pytest.raises(ConfigError, match="either iterations or a duration"):
        BenchmarkPlan((1,), (16,), iterations=None, duration_s=None)
    with pytest.raises(ConfigError, match="at least one"):
        BenchmarkPlan((), (16,))
    with pytest.raises(ConfigError, match="both batch sizes and sequence lengths"):
        RunConfig(model="m", bench_batch_sizes=(1,))


class CountingModel:
    def __init__(self) -> None:
        self.calls = 0

    def run(self, batch: dict) -> None:
        self.calls += 1


def test_cell_excludes_warmup_and_runs_every_trial() -> None:
    model = CountingModel()
    plan = BenchmarkPlan((2,), (8,), warmup=3, iterations=5, trials=4)
    cell = run_cell([model], 2, 8, plan, input_names=("input_ids", "attention_mask"), vocab_size=50)
    assert model.calls == 3 + 5 * 4
    assert cell.latency["runs"] == 20 and len(cell.samples_per_s_trials) == 4
    assert cell.spread_pct >= 0


def test_a_cell_shorter_than_the_sampling_interval_still_has_resources() -> None:
    plan = BenchmarkPlan((1,), (8,), warmup=0, iterations=2, trials=1)
    cell = run_cell([CountingModel()], 1, 8, plan, input_names=("input_ids",), vocab_size=50)
    assert cell.resources["rss_mb_max"] > 0
    assert cell.resources["cpu_percent_mean"] >= 0


def test_instances_run_concurrently() -> None:
    models = [CountingModel(), CountingModel()]
    plan = BenchmarkPlan((1,), (8,), warmup=0, iterations=3, trials=1, instances=2)
    cell = run_cell(models, 1, 8, plan, input_names=("input_ids",), vocab_size=50)
    assert [m.calls for m in models] == [3, 3] and cell.latency["runs"] == 6


def test_synthetic_inputs_have_the_right_shape() -> None:
    feeds = synthetic_batch(4, 16, ("input_ids", "attention_mask", "token_type_ids"), 100)
    assert feeds["input_ids"].shape == (4, 16) and feeds["token_type_ids"].sum() == 0
    assert feeds["input_ids"].max() < 100


def test_benchmark_only_run_prints_the_grid(tiny_assets: Path, kiln_home: Path) -> None:
    events: list = []
    result = run_pipeline(
        RunConfig(
            model="tiny-ner-bert",
            evaluate=False,
            bench_batch_sizes=(1, 4),
            bench_seq_lens=(16, 32),
            bench_iterations=3,
            bench_trials=2,
            bench_warmup=1,
            instances=2,
        ),
        "bench",
        events.append,
    )
    cells = result["benchmark"]["cells"]
    assert [(c["batch_size"], c["seq_len"]) for c in cells] == [(1, 16), (1, 32), (4, 16), (4, 32)]
    for cell in cells:
        assert cell["samples_per_s"] > 0 and len(cell["samples_per_s_trials"]) == 2
        assert cell["latency"]["p99_ms"] >= cell["latency"]["p50_ms"]
        assert cell["percent_of_peak"] > 0
    assert any(isinstance(e, StageSkipped) and e.stage_name == "evaluate" for e in events)


@pytest.mark.slow
def test_processes(tiny_assets: Path, kiln_home: Path) -> None:
    result = run_pipeline(
        RunConfig(
            model="tiny-ner-bert",
            evaluate=False,
            bench_batch_sizes=(2,),
            bench_seq_lens=(16,),
            bench_iterations=3,
            bench_trials=2,
            processes=2,
        ),
        "bench-proc",
        lambda e: None,
    )
    (cell,) = result["benchmark"]["cells"]
    assert cell["latency"]["runs"] == 2 * 3 * 2
