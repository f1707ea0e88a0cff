"""The evaluate stage: the whole split through the built model, scored live.

Every finished batch's predictions are checkpointed, so a run killed here resumes
with the batches already evaluated. The loop itself is :mod:`kiln_lab.core.evaluate`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kiln_lab.core.stages.compile import Compiled
from kiln_lab.core.stages.context import StageContext
from kiln_lab.core.stages.load import Loaded
from kiln_lab.core.stages.paired import compare_with_fp32
from kiln_lab.core.stages.resolve import Resolved

if TYPE_CHECKING:
    from kiln_lab.core.evaluate import EvaluationResult

log = logging.getLogger(__name__)


def run(
    ctx: StageContext, resolved: Resolved, loaded: Loaded, compiled: Compiled
) -> EvaluationResult | None:
    """Accuracy, throughput and latency of the evaluation; None where skipped."""
    from kiln_lab.core.encode import draw_order, shard_ends, stream_batches
    from kiln_lab.core.evaluate import evaluate

    if not ctx.config.evaluate:
        ctx.skip("evaluate", "benchmark-only run: no accuracy figures")
        return None
    if not compiled.model.runs_locally:
        ctx.skip(
            "evaluate",
            f"{resolved.profile.name}'s artifact runs only on its device tool; "
            "its benchmark figures come from the tool",
        )
        return None
    plan = loaded.plan
    with ctx.stage("evaluate") as summary:
        completed = _same_plan(
            {
                int(key.rsplit("/", 1)[1]): value
                for key, value in ctx.checkpoints.load("evaluate/").items()
            },
            plan,
        )
        remaining = [n for n in range(len(plan)) if n not in completed]
        if completed:
            log.info(
                "resuming: %d of %d batches were evaluated before the interruption; "
                "their predictions are kept",
                len(completed),
                len(plan),
            )
            summary["resumed_batches"] = len(completed)
        result = evaluate(
            compiled.model,
            stream_batches(loaded.encoder, loaded.examples, [plan[n] for n in remaining]),
            loaded.examples,
            task=resolved.card.task,
            labels=resolved.card.labels,
            emit=ctx.emit,
            cancelled=ctx.cancelled,
            score=not loaded.model.perf_only,
            numbers=remaining,
            completed=completed,
            checkpoint=lambda items: ctx.checkpoints.save(
                {f"evaluate/{n:06d}": v for n, v in items.items()}
            ),
            confidence=ctx.config.confidence,
            until=ctx.config.until,
            shard_ends=shard_ends(len(loaded.examples), resolved.batch_size)
            if ctx.config.order == "shards"
            else (),
            draw_order=draw_order(len(loaded.examples)),
            # The worker's cancel flag also carries the app's "stop evaluating" request.
            stop_requested=getattr(ctx.cancelled, "stop_evaluation", None),
        )
        if result.truncated:
            log.warning(
                truncation_note(
                    resolved.card.task, result.truncated, len(loaded.examples), resolved.seq_len
                )
            )
        paired = compare_with_fp32(ctx, resolved, loaded, compiled, result)
        if paired is not None and result.accuracy is not None:
            result.accuracy["paired"] = paired
        summary |= {
            "metrics": result.accuracy,
            "throughput": result.throughput,
            "latency": result.latency,
            "truncated": result.truncated,
        }
        if result.accuracy:
            shown = {
                k: round(v, 4)
                for k, v in result.accuracy.items()
                if isinstance(v, float) and k != "confidence"
            }
            log.info("accuracy: %s", shown)
            stop = result.accuracy.get("early_stop")
            if stop:
                log.info(
                    "stopped early after %d of %d examples (%s): the whole split's %s lies in "
                    "[%.4f, %.4f]",
                    stop["after"],
                    stop["of"],
                    "asked from the app"
                    if stop.get("requested")
                    else f"interval narrower than {stop['width']}",
                    stop["metric"],
                    stop["interval"]["low"],
                    stop["interval"]["high"],
                )
        log.info(
            "throughput %.1f samples/s (%.0f tokens/s, padding waste %.1f%%), batch latency "
            "p50 %.1f ms, p99 %.1f ms",
            result.throughput["samples_per_s"],
            result.throughput["tokens_per_s"],
            100 * result.throughput["padding_waste"],
            result.latency["p50_ms"],
            result.latency["p99_ms"],
        )
    return result


def truncation_note(task: str, truncated: int, total: int, seq_len: int) -> str:
    """What truncation did to the scores, in the task's own terms.

    Only a tagger predicts per token, so only NER speaks of tails "predicted O"; a
    classifier still gives one label per example, read from the first ``seq_len`` tokens.
    """
    head = (
        f"{truncated} of {total} examples were longer than {seq_len} tokens and were "
        "truncated; the model never saw their tails"
    )
    if task == "token-classification":
        return (
            f"{head}: entity scores count them as predicted O, token accuracy leaves them "
            "out (truncated_tokens)"
        )
    return (
        f"{head}: each was classified from its first {seq_len} tokens only (a longer "
        "sequence length, up to the card's maximum, reads more of them)"
    )


def _same_plan(completed: dict[int, Any], plan: Sequence[Sequence[int]]) -> dict[int, Any]:
    """The checkpointed batches, if each holds the examples this run's plan puts there.

    A run interrupted under a Kiln that planned its batches differently (another shard
    layout) would otherwise have some examples scored twice and others never; its
    predictions are dropped and the evaluation starts again instead.
    """
    for number, value in completed.items():
        indices = value.get("indices") if isinstance(value, dict) else None
        if number >= len(plan) or (indices is not None and list(indices) != list(plan[number])):
            log.warning(
                "the %d checkpointed batches were planned differently (by another Kiln "
                "version?): evaluating from the start so no example counts twice",
                len(completed),
            )
            return {}
    return completed
