"""The run pipeline: each stage's typed output handed to the stages that need it.

resolve -> load -> export -> optimize -> quantize -> compile -> verify -> evaluate ->
benchmark -> report (:data:`kiln_lab.core.stages.STAGES`). Stages take the run's
:class:`StageContext` and their inputs, never print, and log through ``logging``; a
stage that does not apply to a profile or precision is skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kiln_lab.core.events import RunStarted
from kiln_lab.core.runconfig import RunConfig
from kiln_lab.core.stages import (
    auto,
    benchmark,
    compile,
    evaluate,
    export,
    load,
    optimize,
    quantize,
    report,
    resolve,
    verify,
)
from kiln_lab.core.stages.context import Checkpoints, Emit, StageContext, current_stage

__all__ = ["Checkpoints", "StageContext", "current_stage", "run_pipeline"]


def run_pipeline(
    config: RunConfig,
    run_id: str,
    emit: Emit,
    cancelled: Callable[[], bool] = lambda: False,
    checkpoints: Checkpoints | None = None,
) -> dict[str, Any]:
    """Run every stage of ``config``; returns the result that ``kiln show`` prints.

    With ``checkpoints`` from an interrupted run, evaluation continues where it stopped.
    """
    from kiln_lab.core.environment import environment

    ctx = StageContext(config, run_id, emit, cancelled, checkpoints or Checkpoints())
    emit(RunStarted(config.to_dict(), environment()))
    resolved = resolve.run(ctx, choose=auto.choose)
    loaded = load.run(ctx, resolved)
    graphs = export.run(ctx, resolved, loaded)
    graphs = optimize.run(ctx, resolved, loaded, graphs)
    quantized = quantize.run(ctx, resolved, loaded, graphs)
    compiled = compile.run(ctx, resolved, loaded, quantized.graphs)
    parity = verify.run(ctx, resolved, loaded, compiled)
    evaluation = evaluate.run(ctx, resolved, loaded, compiled)
    benchmarked = benchmark.run(ctx, resolved, loaded, compiled)
    return report.run(ctx, resolved, loaded, quantized, compiled, parity, evaluation, benchmarked)
