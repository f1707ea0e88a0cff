"""Benchmark grid, trials and spread, concurrency, roofline arithmetic."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from kiln_lab.core.benchmark import BenchmarkPlan, run_cell, synthetic_batch
from kiln_lab.core.errors import ConfigError
from kiln_lab.core.events import StageSkipped
from kiln_lab.core.pipeline import run_pipeline
from kiln_lab.core.roofline import Peak, achieved, encoder_flops_per_sample
from kiln_lab.core.runconfig import RunConfig


def test_bert_base_flops_match_the_textbook_figure() -> None:
    config = SimpleNamespace(hidden_size=768, intermediate_size=3072, num_hidden_layers=12)
    per_token = encoder_flops_per_sample(config, 1, 0)
    # 2 x ~85M encoder weights per token, plus a little attention.
    assert 169e6 < per_token < 171e6
    int8 = Peak("onnxruntime", "int8", "MatMulInteger", 400.0, 2048, 2.0, {})
    result = achieved(config, 2, samples_per_s=10, mean_seq_len=128, peak=int8)
    assert result["peak_gflops"] == 400.0 and result["peak_kernel"] == "MatMulInteger"
    assert result["percent_of_peak"] == pytest.approx(100 * result["achieved_gflops"] / 400)
    assert result["peak_suspect"] is None
    assert achieved(config, 2, 10, 128, None)["percent_of_peak"] is None


def test_a_run_above_its_peak_marks_the_peak_suspect_and_drops_it(kiln_home: Path) -> None:
    """Never a silent 338%: the figure says the peak is wrong, and the cached peak goes
    so the next run measures it again."""
    from kiln_lab.core import roofline

    config = SimpleNamespace(hidden_size=768, intermediate_size=3072, num_hidden_layers=12)
    low = Peak("onnxruntime", "fp32", "MatMul fp32", 50.0, 2048, 2.0, {})
    cached = roofline._cache_path("onnxruntime", "fp32", 2)
    cached.write_text(json.dumps(low.to_dict()))
    assert roofline.peak_for("onnxruntime", "fp32", 2) == low  # read from the cache
    result = achieved(config, 2, samples_per_s=10, mean_seq_len=128, peak=low, threads=2)
    assert result["percent_of_peak"] > 100 and "re-measured" in result["peak_suspect"]
    assert not cached.exists()


def test_a_peak_measured_under_load_is_marked_and_soon_retaken(
    kiln_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kiln_lab.core import roofline
    from kiln_lab.core.machine_load import Load

    busy = Load(1.0, 3.5, 0.0, 1.4, 2)
    monkeypatch.setattr(roofline.LoadMeter, "read", lambda self: busy)
    peak = roofline.peak_for("onnxruntime", "fp32", 1, seconds=0.05)
    assert peak is not None and peak.gflops > 0 and "1.40 of 2 cores" in peak.suspect
    config = SimpleNamespace(hidden_size=768, intermediate_size=3072, num_hidden_layers=12)
    assert "busy" in achieved(config, 2, 1e-3, 128, peak)["peak_suspect"]
    quiet = Load(1.0, 0.1, 0.0, 0.01, 2)
    monkeypatch.setattr(roofline.LoadMeter, "read", lambda self: quiet)
    assert roofline.peak_for("onnxruntime", "fp32", 1, seconds=0.05) == peak  # kept a while
    monkeypatch.setattr(roofline, "RETAKE_BUSY_AFTER_S", 0.0)
    again = roofline.peak_for("onnxruntime", "fp32", 1, seconds=0.05)
    assert again is not None and again.suspect is None and again != peak


def test_each_runtime_and_precision_has_its_own_kernel() -> None:
    from kiln_lab.core import roofline

    assert roofline.peak_for("external", "int8") is None  # a vendor card: no CPU kernel
    assert roofline.peak_for("onnxruntime", "fp16") is None
    assert len({roofline.KERNELS[k] for k in roofline.KERNELS}) == len(roofline.KERNELS)


def test_the_load_meter_sees_another_process_burn_a_core() -> None:
    """A process that is not Kiln's (here an orphan: its parent exits at once) burning a
    core shows as other processes' CPU, and makes the stretch busy."""
    import subprocess
    import sys
    import time

    from kiln_lab.core.machine_load import LoadMeter

    burn = "import time\nt = time.time()\nwhile time.time() - t < 0.8: pass"
    spawn = f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {burn!r}])"
    meter = LoadMeter()
    subprocess.run([sys.executable, "-c", spawn], check=True)
    time.sleep(0.9)
    load = meter.read()
    assert load.other_cores >= 0.5 and load.busy and "other processes used" in load.busy


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
        assert cell["percent_of_peak"] > 0 or cell["peak_suspect"]
        assert (
            cell["peak_kernel"].startswith("ONNX Runtime MatMul fp32")
            and "other_cores" in cell["load"]
        )
    assert any(isinstance(e, StageSkipped) and e.stage_name == "evaluate" for e in events)
    # Where the time goes at the largest cell, from ONNX Runtime's own profiler.
    operators = result["benchmark"]["operators"]
    assert (operators["batch_size"], operators["seq_len"]) == (4, 32)
    kinds = {o["op_type"] for o in operators["ops"]}
    assert "MatMul" in kinds and sum(o["share"] for o in operators["ops"]) == pytest.approx(1.0)


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
