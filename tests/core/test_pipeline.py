"""The real pipeline on tiny models: every stage, every family, both runtimes."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln_lab.core.errors import Cancelled, LabelMismatch, ModelNotFound
from kiln_lab.core.events import (
    ArtifactWritten,
    MetricSampled,
    RunFinished,
    RunStarted,
    StageFinished,
    StageSkipped,
    StageStarted,
)
from kiln_lab.core.pipeline import run_pipeline
from kiln_lab.core.runconfig import RunConfig
from kiln_lab.core.store import RunStore
from kiln_lab.core.worker import execute_run

CASES = [
    ("tiny-ner-bert", "cpu-onnxruntime"),
    ("tiny-ner-bert", "cpu-torch"),
    ("tiny-ner-xlmr", "cpu-onnxruntime"),
    ("tiny-senti-roberta", "cpu-onnxruntime"),
]


@pytest.mark.parametrize(("model", "profile"), CASES)
def test_pipeline_runs_every_stage(
    model: str, profile: str, tiny_assets: Path, kiln_home: Path
) -> None:
    events: list = []
    config = RunConfig(model=model, profile=profile, limit=40, batch_size=8)
    result = run_pipeline(config, "test-run", events.append)
    assert isinstance(events[0], RunStarted)
    started = [e.stage_name for e in events if isinstance(e, StageStarted)]
    finished = [e.stage_name for e in events if isinstance(e, StageFinished)]
    skipped = [e.stage_name for e in events if isinstance(e, StageSkipped)]
    assert started == finished
    assert set(started) | set(skipped) == {
        "resolve",
        "load",
        "export",
        "optimize",
        "quantize",
        "compile",
        "verify",
        "evaluate",
        "benchmark",
        "report",
    }
    metric_key = "entity_f1" if "ner" in model else "accuracy"
    assert 0.0 <= result["metrics"][metric_key] <= 1.0
    assert result["examples"] == 40
    assert result["throughput"]["samples_per_s"] > 0
    assert result["latency"]["p99_ms"] >= result["latency"]["p50_ms"] > 0
    live = [e for e in events if isinstance(e, MetricSampled) and e.group == "accuracy"]
    assert live and live[-1].values[metric_key] == result["metrics"][metric_key]
    if profile == "cpu-onnxruntime":
        parity = result["parity"]
        assert parity["status"] == "pass", parity
        assert parity["agreement"] == 1.0
        assert any(isinstance(e, ArtifactWritten) and e.artifact == "onnx" for e in events)
    else:
        assert "verify" in skipped and "export" in skipped


def test_export_is_cached_between_runs(tiny_assets: Path, kiln_home: Path) -> None:
    first: list = []
    run_pipeline(RunConfig(model="tiny-ner-bert", limit=8), "a", first.append)
    second: list = []
    run_pipeline(RunConfig(model="tiny-ner-bert", limit=8), "b", second.append)
    exports = [e for e in second if isinstance(e, StageFinished) and e.stage_name == "export"]
    assert exports[0].summary["cached"] is True


def test_perf_only_has_no_accuracy(tiny_assets: Path, kiln_home: Path) -> None:
    events: list = []
    result = run_pipeline(
        RunConfig(
            model="bert-base-chinese-ner",
            perf_only=True,
            limit=4,
            batch_size=4,
            seq_len=32,
            profile="cpu-torch",
        ),
        "perf",
        events.append,
    )
    assert result["perf_only"] is True and result["metrics"] is None
    assert not [e for e in events if isinstance(e, MetricSampled) and e.group == "accuracy"]
    assert result["throughput"]["samples_per_s"] > 0


def test_missing_weights_lists_every_place(tiny_assets: Path, kiln_home: Path) -> None:
    with pytest.raises(ModelNotFound) as info:
        run_pipeline(RunConfig(model="bert-base-chinese-ner", limit=4), "x", lambda e: None)
    message = info.value.message
    assert "KILN_HOME models" in message and "Hugging Face cache" in message
    assert "--perf-only" in info.value.hint


def test_dataset_labels_must_fit_the_model(
    tiny_assets: Path, kiln_home: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "odd.bio"
    bad.write_text("张 B-PERSON\n三 I-PERSON\n\n", encoding="utf-8")
    with pytest.raises(LabelMismatch) as info:
        run_pipeline(
            RunConfig(model="tiny-ner-bert", dataset_file=str(bad), dataset_format="bio"),
            "x",
            lambda e: None,
        )
    assert "B-PERSON" in info.value.message


def test_worker_records_cancel(tiny_assets: Path, kiln_home: Path) -> None:
    store = RunStore()
    run_id = store.create_run(RunConfig(model="tiny-ner-bert", limit=16).to_dict())
    store.request_cancel(run_id)
    code = execute_run(store, run_id)
    assert code == Cancelled.exit_code
    assert store.run(run_id).status == "cancelled"
    assert isinstance(store.events(run_id)[-1].event, RunFinished)


def test_worker_records_success_and_result(tiny_assets: Path, kiln_home: Path) -> None:
    store = RunStore()
    run_id = store.create_run(RunConfig(model="tiny-senti-roberta", limit=16).to_dict())
    assert execute_run(store, run_id) == 0
    record = store.run(run_id)
    assert record.status == "succeeded"
    assert record.result["metrics"]["accuracy"] >= 0
    assert Path(store.artifacts(run_id)[-1]["path"]).name == "report.json"
