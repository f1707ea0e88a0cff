"""The benchmark stage: throughput and latency on a grid of fixed shapes.

Kiln's own timed loop over batch size x sequence length (warm-up excluded, several
trials, CPU / memory / GPU sampled alongside, the share of the machine's measured
peak), or, for a vendor profile, the vendor tool's own figures per cell.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kiln_lab.core.events import BenchmarkCellMeasured, MetricSampled, ProgressAdvanced
from kiln_lab.core.machine_load import LoadMeter
from kiln_lab.core.runtimes import CompiledModel
from kiln_lab.core.stages.compile import Compiled
from kiln_lab.core.stages.context import StageContext
from kiln_lab.core.stages.load import Loaded
from kiln_lab.core.stages.resolve import Resolved

if TYPE_CHECKING:
    from kiln_lab.core.benchmark import CellResult
    from kiln_lab.core.roofline import Peak

log = logging.getLogger(__name__)

SPREAD_WARN_PCT = 10.0
"""Trials of one cell further apart than this are called out as noise."""


@dataclass(frozen=True)
class Benchmarked:
    """The grid that ran, one row per cell, and the kernel peak the cells are held against."""

    plan: dict[str, Any]
    cells: list[dict[str, Any]]
    peak: dict[str, Any] | None = None
    tool: bool = False
    operators: dict[str, Any] | None = None
    """Time per operator type at the largest cell, from the runtime's profiler."""
    """True where the figures come from the profile's external benchmark tool."""

    def to_dict(self) -> dict[str, Any]:
        if self.tool:
            return {"plan": self.plan, "cells": self.cells, "tool": True}
        return {
            "plan": self.plan,
            "cells": self.cells,
            "peak": self.peak,
            "operators": self.operators,
        }


def run(
    ctx: StageContext, resolved: Resolved, loaded: Loaded, compiled: Compiled
) -> Benchmarked | None:
    cfg = ctx.config
    runtime = resolved.runtime
    if runtime.benchmarks_with_tool(
        grid_requested=bool(cfg.bench_batch_sizes), evaluated=cfg.evaluate, model=compiled.model
    ):
        with ctx.stage("benchmark") as summary:
            plan, cells = runtime.benchmark(
                compiled.request, compiled.artifact, cfg, loaded.model.weights_sha256
            )
            summary["cells"] = len(cells)
        return Benchmarked(plan, cells, tool=True)
    if not cfg.bench_batch_sizes:
        ctx.skip(
            "benchmark",
            "no benchmark grid requested (kiln bench, or --batch-sizes and "
            "--seq-lens); speed figures come from the evaluation pass",
        )
        return None
    return _in_process(ctx, resolved, loaded, compiled)


def _in_process(
    ctx: StageContext, resolved: Resolved, loaded: Loaded, compiled: Compiled
) -> Benchmarked:
    from kiln_lab.core.benchmark import BenchmarkPlan, run_grid
    from kiln_lab.core.roofline import achieved

    cfg = ctx.config
    defaults = resolved.profile.defaults
    with ctx.stage("benchmark") as summary:
        plan = BenchmarkPlan(
            batch_sizes=tuple(cfg.bench_batch_sizes),
            seq_lens=tuple(cfg.bench_seq_lens or ()),
            warmup=cfg.bench_warmup,
            iterations=cfg.bench_iterations,
            duration_s=cfg.bench_duration_s,
            trials=cfg.bench_trials,
            instances=cfg.instances or defaults.instances,
            processes=cfg.processes or defaults.processes,
        )
        model_config = loaded.model.config
        peak = build_peak(resolved, cfg.precision)
        total = len(plan.batch_sizes) * len(plan.seq_lens)
        cells: list[dict[str, Any]] = []
        meter = [LoadMeter()]

        def on_cell(cell: CellResult) -> None:
            load = meter[0].read()
            meter[0] = LoadMeter()
            row = cell.to_dict() | achieved(
                model_config,
                len(resolved.card.labels),
                cell.samples_per_s,
                cell.seq_len,
                peak,
                defaults.intra_op_threads,
            )
            row["load"] = load.to_dict()
            cells.append(row)
            if load.busy:
                log.warning(
                    "batch %d x seq %d timed on a busy machine (%s): its figures are suspect",
                    cell.batch_size,
                    cell.seq_len,
                    load.busy,
                )
            if cell.spread_pct > SPREAD_WARN_PCT:
                log.warning(
                    "batch %d x seq %d: trials spread by %.1f%% (over %.0f%%): too noisy to "
                    "compare closely; run more trials or on a quieter machine",
                    cell.batch_size,
                    cell.seq_len,
                    cell.spread_pct,
                    SPREAD_WARN_PCT,
                )
            ctx.emit(ProgressAdvanced("benchmark", len(cells), total, "cells"))
            ctx.emit(
                BenchmarkCellMeasured(
                    "benchmark",
                    cell.batch_size,
                    cell.seq_len,
                    cell.samples_per_s,
                    {k: v for k, v in cell.latency.items() if k.endswith("_ms")},
                    cell.spread_pct,
                )
            )
            if cell.resources:
                # The cell's CPU and memory (GPU with NVML), for the live resource pane.
                ctx.emit(MetricSampled("benchmark", "resources", _latest_resources(cell.resources)))
            log.info(
                "batch %3d x seq %4d: %8.1f samples/s (trials %s, spread %.1f%%), p50 "
                "%.2f ms, p99 %.2f ms, %s of peak",
                cell.batch_size,
                cell.seq_len,
                cell.samples_per_s,
                ", ".join(f"{r:.1f}" for r in cell.samples_per_s_trials),
                cell.spread_pct,
                cell.latency["p50_ms"],
                cell.latency["p99_ms"],
                "?" if row["percent_of_peak"] is None else f"{row['percent_of_peak']:.0f}%",
            )

        run_grid(
            _instances(compiled.model),
            plan,
            input_names=loaded.input_names,
            vocab_size=int(model_config.vocab_size),
            max_seq_len=resolved.card.max_seq_len,
            on_cell=on_cell,
            cancelled=ctx.cancelled,
            process_factory=compiled.model.process_cell_runner(
                plan, loaded.input_names, int(model_config.vocab_size)
            ),
        )
        peak_record = peak.to_dict() if peak is not None else None
        operators = _operators(compiled.model, cells, loaded.input_names, model_config)
        summary |= {"cells": len(cells), "peak": peak_record, "operators": operators}
    return Benchmarked(dict(vars(plan)), cells, peak_record, operators=operators)


def _operators(
    model: CompiledModel, cells: list[dict[str, Any]], input_names: Any, config: Any
) -> dict[str, Any] | None:
    """Where the time goes at the grid's last (largest) cell: the runtime profiler's time
    per operator type over about a second of runs, on a separate profiled session."""
    from kiln_lab.core.benchmark import synthetic_batch

    if not cells:
        return None
    last = cells[-1]
    p50_s = max((last.get("latency") or {}).get("p50_ms") or 1.0, 1e-3) / 1000.0
    runs = max(1, min(10, round(1.0 / p50_s)))
    batch = synthetic_batch(
        last["batch_size"], last["seq_len"], input_names, int(config.vocab_size)
    )
    try:
        breakdown = model.op_breakdown([batch] * runs)
    except Exception as exc:  # noqa: BLE001 - a profiler failure must not fail the run
        log.warning("the runtime's profiler failed, no operator breakdown: %s", exc)
        return None
    if breakdown is None:
        return None
    breakdown |= {"batch_size": last["batch_size"], "seq_len": last["seq_len"]}
    top = ", ".join(f"{o['op_type']} {o['share']:.0%}" for o in breakdown["ops"][:5])
    log.info(
        "where the time goes at batch %d x seq %d: %s",
        last["batch_size"],
        last["seq_len"],
        top,
    )
    return breakdown


def _instances(model: CompiledModel) -> Callable[[], CompiledModel]:
    """The built model for the first benchmark instance, more from the runtime after."""
    first = [model]
    return lambda: first.pop() if first else model.new_instance()


def _latest_resources(summary: dict[str, float]) -> dict[str, float]:
    """A benchmark cell's resource summary in the evaluation's sample form: mean CPU %
    and GPU utilisation, peak memory."""
    keys = {
        "cpu_percent": "cpu_percent_mean",
        "rss_mb": "rss_mb_max",
        "gpu_util_percent": "gpu_util_percent_mean",
        "gpu_mem_mb": "gpu_mem_mb_max",
        "gpu_mem_total_mb": "gpu_mem_total_mb_max",
        "gpu_count": "gpu_count_max",
    }
    return {name: summary[key] for name, key in keys.items() if key in summary}


def build_peak(resolved: Resolved, precision: str) -> Peak | None:
    """The kernel peak a CPU build is held against; None on an accelerator (Kiln times no
    kernel on a card) and where no kernel matches the runtime and precision."""
    from kiln_lab.core.roofline import peak_for

    profile = resolved.profile
    if profile.device != "cpu":
        return None
    return peak_for(profile.runtime, precision, profile.defaults.intra_op_threads)
