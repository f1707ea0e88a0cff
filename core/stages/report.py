"""The report stage: the run's result, assembled from every stage's output.

The result is what ``kiln run --json`` prints, what the run store keeps and what the
app, ``kiln show`` and ``kiln report`` read; ``report.json`` in the run's artifacts
directory holds the same.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from kiln_lab.core.events import ArtifactWritten
from kiln_lab.core.stages.benchmark import Benchmarked
from kiln_lab.core.stages.compile import Compiled
from kiln_lab.core.stages.context import StageContext
from kiln_lab.core.stages.load import Loaded
from kiln_lab.core.stages.quantize import Quantized
from kiln_lab.core.stages.resolve import Resolved

if TYPE_CHECKING:
    from kiln_lab.core.evaluate import EvaluationResult
    from kiln_lab.core.parity import ParityReport

log = logging.getLogger(__name__)


def run(
    ctx: StageContext,
    resolved: Resolved,
    loaded: Loaded,
    quantized: Quantized,
    compiled: Compiled,
    parity: ParityReport | None,
    evaluation: EvaluationResult | None,
    benchmarked: Benchmarked | None,
) -> dict[str, Any]:
    from kiln_lab.core.environment import environment
    from kiln_lab.core.export import file_sha256, write_atomically
    from kiln_lab.core.paths import artifacts_dir

    card, cfg = resolved.card, ctx.config
    with ctx.stage("report") as summary:
        result = _stage_outputs(
            resolved, loaded, quantized, compiled, parity, evaluation, cfg.precision
        )
        if benchmarked is not None:
            result["benchmark"] = benchmarked.to_dict()
        if result.get("throughput") and "evaluate" in ctx.stage_load:
            result["throughput"]["load"] = ctx.stage_load["evaluate"]
            if ctx.stage_load["evaluate"].get("busy"):
                log.warning(
                    "the evaluation was timed on a busy machine (%s): its speed is suspect",
                    ctx.stage_load["evaluate"]["busy"],
                )
        metrics = result.get("metrics") or {}
        references = [
            published_figure(figure.model_dump(), metrics, resolved, cfg.limit)
            for figure in card.reference
        ]
        if resolved.held is not None:
            result["held_apart"] = resolved.held.describe()
        if ctx.auto is not None:
            result["auto"] = ctx.auto
        result |= {
            "run_id": ctx.run_id,
            "model": card.name,
            "family": card.family,
            "task": card.task,
            "dataset": resolved.dataset.name,
            "split": resolved.split.name,
            "data_hash": resolved.split.content_hash,
            "profile": resolved.profile.name,
            "runtime": compiled.model.description,
            "runtime_settings": compiled.model.settings(),
            "precision": cfg.precision,
            "perf_only": loaded.model.perf_only,
            "batch_size": resolved.batch_size,
            "seq_len": resolved.seq_len,
            "padding": cfg.padding,
            "examples": len(loaded.examples),
            "reference": references,
            "stages": dict(ctx.stage_times),
            "environment": environment(),
        }
        out = artifacts_dir(ctx.run_id) / "report.json"
        write_atomically(out, json.dumps(result, indent=2, ensure_ascii=False, default=str))
        summary["path"] = str(out)
        ctx.emit(
            ArtifactWritten("report", "report", str(out), file_sha256(out), out.stat().st_size)
        )
    result["stages"] = dict(ctx.stage_times)
    return result


def published_figure(
    figure: dict[str, Any], metrics: dict[str, Any], resolved: Resolved, limit: int | None
) -> dict[str, Any]:
    """A card's figure beside the run's: the delta only when the run evaluated the very
    data the figure was measured on, in full (not another dataset, not ``--limit``, not
    stopped early); the per-language breakdown beside the run's where both have one."""
    measured = metrics.get(figure["metric"])
    same_data = figure.get("dataset") == f"{resolved.dataset.name}:{resolved.split.name}"
    comparable = same_data and not limit and metrics.get("complete", True)
    out = figure | {
        "measured": measured,
        "delta": measured - figure["value"] if measured is not None and comparable else None,
    }
    if not comparable:
        out["no_delta_because"] = (
            "the run's data is not the figure's"
            if not same_data
            else "the run did not evaluate the whole split"
        )
    ours = metrics.get("per_language") or {}
    if figure.get("per_language") and ours:
        out["measured_per_language"] = {lang: row["accuracy"] for lang, row in ours.items()}
    return out


def _stage_outputs(
    resolved: Resolved,
    loaded: Loaded,
    quantized: Quantized,
    compiled: Compiled,
    parity: ParityReport | None,
    evaluation: EvaluationResult | None,
    precision: str,
) -> dict[str, Any]:
    """The figures each stage measured, in pipeline order."""
    result: dict[str, Any] = {}
    if quantized.guard is not None:
        result["guard"] = quantized.guard
    if quantized.summary is not None:
        result["quantization"] = quantized.summary
    if compiled.toolchain is not None:
        result["toolchain"] = compiled.toolchain
    result["runtime_settings"] = compiled.settings
    if parity is not None:
        result["parity"] = parity.to_dict()
    if evaluation is not None:
        throughput = dict(evaluation.throughput)
        if throughput.get("samples_per_s"):
            throughput |= _achieved(resolved, loaded, throughput, precision)
        result |= {
            "metrics": evaluation.accuracy,
            "throughput": throughput,
            "latency": evaluation.latency,
            "resources": evaluation.resources,
            "truncated": evaluation.truncated,
        }
    return result


def _achieved(
    resolved: Resolved, loaded: Loaded, throughput: dict[str, Any], precision: str
) -> dict[str, Any]:
    """The evaluation's compute rate against the machine's measured peak (the peak is
    measured once per machine, then cached, outside the evaluate stage's timing)."""
    from kiln_lab.core.roofline import achieved
    from kiln_lab.core.stages.benchmark import build_peak

    padded = throughput["tokens_per_s"] / max(1e-9, 1 - throughput["padding_waste"])
    return achieved(
        loaded.model.config,
        len(resolved.card.labels),
        throughput["samples_per_s"],
        padded / throughput["samples_per_s"],
        build_peak(resolved, precision),
        resolved.profile.defaults.intra_op_threads,
    )
