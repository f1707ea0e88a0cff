"""Benchmark one grid cell across several processes, each with its own ORT session.

Processes start with ``spawn`` so no session state is inherited; each runs the same
warm-up and trials as a single-process cell, and the totals add up. Latency quantiles
are combined conservatively: the median of the p50s, the largest p90/p99/max.
"""

from __future__ import annotations

import multiprocessing
import statistics
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kiln_lab.core.benchmark import BenchmarkPlan, CellResult, run_cell


def _one_process(args: tuple) -> dict[str, Any]:
    from kiln_lab.core.runtimes.onnxruntime import OnnxRuntimeModel

    path, providers, plan_dict, batch, seq_len, input_names, vocab_size = args
    plan = BenchmarkPlan(**{**plan_dict, "processes": 1})
    models = [
        OnnxRuntimeModel(Path(path), providers=tuple(providers)) for _ in range(plan.instances)
    ]
    return asdict(
        run_cell(models, batch, seq_len, plan, input_names=input_names, vocab_size=vocab_size)
    )


def cell_across_processes(
    path: Path,
    providers: Sequence[str],
    plan: BenchmarkPlan,
    batch: int,
    seq_len: int,
    input_names: Sequence[str],
    vocab_size: int,
) -> CellResult:
    context = multiprocessing.get_context("spawn")
    job = (str(path), list(providers), asdict(plan), batch, seq_len, list(input_names), vocab_size)
    with context.Pool(plan.processes) as pool:
        parts = pool.map(_one_process, [job] * plan.processes)
    trials = [sum(p["samples_per_s_trials"][i] for p in parts) for i in range(plan.trials)]
    mean = statistics.fmean(trials)
    latency = {
        "mean_ms": statistics.fmean(p["latency"]["mean_ms"] for p in parts),
        "p50_ms": statistics.median(p["latency"]["p50_ms"] for p in parts),
        "p90_ms": max(p["latency"]["p90_ms"] for p in parts),
        "p99_ms": max(p["latency"]["p99_ms"] for p in parts),
        "max_ms": max(p["latency"]["max_ms"] for p in parts),
        "runs": sum(p["latency"]["runs"] for p in parts),
    }
    return CellResult(
        batch,
        seq_len,
        mean,
        trials,
        (max(trials) - min(trials)) / mean * 100 if mean else 0.0,
        latency,
        {"processes": float(plan.processes)},
    )
