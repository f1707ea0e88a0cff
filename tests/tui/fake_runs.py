"""A run store with fixed content, for snapshot and pilot tests that need no worker.

Every timestamp derives from ``T0`` so screens render the same on every machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kiln_lab.core.events import (
    BenchmarkCellMeasured,
    Event,
    LogLine,
    MetricSampled,
    ProgressAdvanced,
    RunFinished,
    RunStarted,
    StageFinished,
    StageSkipped,
    StageStarted,
)
from kiln_lab.core.stages import STAGES
from kiln_lab.core.store import RunStore

T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC
NER_CONFIG = {
    "model": "tiny-ner-bert",
    "profile": "cpu-onnxruntime",
    "precision": "fp32",
    "dataset": None,
    "split": "test",
    "batch_size": 8,
    "seq_len": None,
    "limit": 200,
    "perf_only": False,
    "dataset_label": "(card default):test",
}
PER_TYPE = {
    "LOC": {"precision": 0.81, "recall": 0.78, "f1": 0.7947, "support": 310},
    "ORG": {"precision": 0.66, "recall": 0.61, "f1": 0.6340, "support": 142},
    "PER": {"precision": 0.90, "recall": 0.88, "f1": 0.8899, "support": 205},
}
SKIPPED = {"quantize": "fp32 needs no quantization", "benchmark": "no benchmark grid requested"}


def ner_accuracy(f1: float, sentences: int, final: bool = False) -> dict[str, Any]:
    return {
        "entity_f1": f1,
        "entity_precision": f1 + 0.012,
        "entity_recall": f1 - 0.011,
        "entity_support": 657,
        "token_accuracy": 0.9712,
        "per_type": PER_TYPE,
        "tokens": 9_000,
        "sentences": sentences,
        "final": final,
    }


def throughput(samples: int, elapsed: float) -> dict[str, Any]:
    return {
        "samples": samples,
        "samples_per_s": samples / elapsed,
        "tokens_per_s": samples * 45 / elapsed,
        "padding_waste": 0.083,
        "elapsed_s": elapsed,
        "window_samples_per_s": samples / elapsed * 1.02,
        "batches": samples // 8,
        "count": samples // 8,
        "mean_ms": 11.0,
        "p50_ms": 10.2,
        "p90_ms": 13.9,
        "p99_ms": 17.4,
        "max_ms": 19.0,
    }


def benchmark_cells(
    batch_sizes: tuple[int, ...], seq_lens: tuple[int, ...], *, t0: float = T0
) -> list[BenchmarkCellMeasured]:
    """A benchmark grid as the benchmark stage reports it: one event per cell, samples/s
    proportional to batch size over sequence length (so the fastest cell is known)."""
    return [
        BenchmarkCellMeasured(
            "benchmark",
            batch,
            seq_len,
            batch * 1000.0 / seq_len,
            {"p50_ms": 0.5, "p90_ms": 0.8, "p99_ms": 1.0, "mean_ms": 0.6},
            1.5,
            ts=t0 + i,
        )
        for i, (batch, seq_len) in enumerate((b, s) for b in batch_sizes for s in seq_lens)
    ]


def run_events(
    config: dict[str, Any], *, f1: float, speed: float, t0: float, finish: bool = True
) -> list[Event]:
    """A complete NER run at fixed times (``finish=False`` stops inside evaluate)."""
    t = t0
    events: list[Event] = [RunStarted(config, {"python": "3.11"}, ts=t)]
    durations = {
        "resolve": 0.2,
        "load": 1.1,
        "export": 2.4,
        "optimize": 0.9,
        "compile": 0.3,
        "verify": 0.5,
        "evaluate": 6.0,
        "report": 0.1,
    }
    for stage in STAGES:
        if stage in SKIPPED:
            events.append(StageSkipped(stage, SKIPPED[stage], ts=t))
            continue
        events.append(StageStarted(stage, f"doing {stage}", ts=t))
        events.append(LogLine(stage, "info", f"{stage}: working on it", "core", ts=t + 0.05))
        if stage == "verify":
            events.append(
                LogLine(stage, "warning", "parity WARN: max |Δlogit| 2.1e-05", "core", ts=t + 0.1)
            )
        if stage == "evaluate":
            for i in range(1, 5):
                done = 50 * i
                events.append(ProgressAdvanced(stage, done, 200, ts=t + i))
                events.append(
                    MetricSampled(
                        stage, "accuracy", ner_accuracy(f1 - 0.01 * (4 - i), done), ts=t + i
                    )
                )
                events.append(
                    MetricSampled(stage, "throughput", throughput(done, i / speed * 50), ts=t + i)
                )
                events.append(
                    MetricSampled(
                        stage, "resources", {"cpu_percent": 187.0, "rss_mb": 612.0}, ts=t + i
                    )
                )
            if not finish:
                return events
        t += durations[stage]
        summary: dict[str, Any] = {}
        if stage == "resolve":
            summary = {
                "dataset": "peoples-daily-1998",
                "split": "test",
                "batch_size": 8,
                "seq_len": 128,
                "model": config["model"],
            }
        if stage == "load":
            summary = {"examples": 200, "perf_only": False}
        events.append(StageFinished(stage, durations[stage], summary, ts=t))
    result = {
        "model": config["model"],
        "dataset": "peoples-daily-1998",
        "split": "test",
        "examples": 200,
        "profile": config["profile"],
        "precision": config["precision"],
        "runtime": "onnxruntime 1.31 CPUExecutionProvider",
        "batch_size": 8,
        "seq_len": 128,
        "perf_only": False,
        "metrics": ner_accuracy(f1, 200, final=True),
        "throughput": throughput(200, 200 / speed),
        "latency": {"p50_ms": 10.2, "p90_ms": 13.9, "p99_ms": 17.4},
        "parity": {"status": "pass", "max_abs_diff": 2.1e-5, "agreement": 1.0, "cosine": 1.0},
        "reference": [
            {
                "metric": "entity_f1",
                "value": 0.5,
                "precision": "fp32",
                "runtime": "PyTorch",
                "source": "test fixture",
            }
        ],
        "stages": {},
    }
    events.append(RunFinished("succeeded", result=result, ts=t))
    return events


def add_run(
    store: RunStore,
    run_id: str,
    config: dict[str, Any],
    events: list[Event],
    *,
    created: float,
    status: str | None = None,
    pid: int | None = None,
) -> None:
    store.create_run(config, run_id=run_id)
    store.append_many(run_id, events)
    finished = next((e for e in events if isinstance(e, RunFinished)), None)
    store.set_status(
        run_id,
        status or (finished.status if finished else "running"),
        result=finished.result if finished else None,
        pid=pid,
    )
    store._conn.execute(
        "UPDATE runs SET created = ?, updated = ? WHERE id = ?", (created, created, run_id)
    )


def fake_store(path: Path) -> Path:
    """Two finished runs of tiny-ner-bert: fp32 (the reference) and an int8 one."""
    with RunStore(path) as store:
        add_run(
            store,
            "20260101-000000-aaaa",
            NER_CONFIG,
            run_events(NER_CONFIG, f1=0.7812, speed=95.0, t0=T0),
            created=T0,
        )
        int8 = NER_CONFIG | {"precision": "int8"}
        add_run(
            store,
            "20260101-001000-bbbb",
            int8,
            run_events(int8, f1=0.7655, speed=171.0, t0=T0 + 600),
            created=T0 + 600,
        )
    return path
