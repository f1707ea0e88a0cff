"""The evaluation loop: run every batch, decode, score as it goes, report live.

Live figures are throttled at the source (a few snapshots a second), so a fast model
cannot flood the store or an SSH link; the final snapshot is always emitted.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psutil

from kiln_lab.core.data import TextExample, TokenExample
from kiln_lab.core.encode import PaddedBatch
from kiln_lab.core.errors import Cancelled
from kiln_lab.core.events import Event, MetricSampled, ProgressAdvanced
from kiln_lab.core.metrics import (
    LatencyRecorder,
    ThroughputMeter,
)
from kiln_lab.core.metrics.outcomes import ClassificationOutcomes, NerOutcomes
from kiln_lab.core.metrics.sequential import MIN_EXAMPLES
from kiln_lab.core.runtimes import CompiledModel
from kiln_lab.core.scoring import Scorer
from kiln_lab.core.tokenization import Encoded

Emit = Callable[[Event], None]
SAMPLE_INTERVAL_S = 0.25


@dataclass
class EvaluationResult:
    accuracy: dict[str, Any] | None
    throughput: dict[str, Any]
    latency: dict[str, Any]
    resources: dict[str, Any]
    truncated: int
    named: Callable[[], list[Any]] = field(default=list, repr=False)
    """Makes the per-example predictions (tag strings only when someone asks)."""
    outcomes: NerOutcomes | ClassificationOutcomes | None = field(default=None, repr=False)
    """Per-example outcomes of the scored examples (None when nothing was scored), for
    a paired comparison with another model on the same examples."""

    @functools.cached_property
    def predictions(self) -> list[Any]:
        """Each example's prediction: a label, or a tag per word."""
        return self.named()


class ResourceSampler:
    """CPU % and RSS of this process (the one running the model)."""

    def __init__(self) -> None:
        from kiln_lab.core.benchmark import nvml_device

        self.process = psutil.Process()
        self.process.cpu_percent(None)
        self.peak_rss = 0
        self.cpu_samples: list[float] = []
        self.gpu = nvml_device()

    def sample(self) -> dict[str, float]:
        from kiln_lab.core.benchmark import gpu_sample

        cpu = self.process.cpu_percent(None)
        rss = self.process.memory_info().rss
        self.peak_rss = max(self.peak_rss, rss)
        self.cpu_samples.append(cpu)
        return {"cpu_percent": cpu, "rss_mb": rss / 1e6} | gpu_sample(self.gpu)

    def summary(self) -> dict[str, float]:
        mean = sum(self.cpu_samples) / len(self.cpu_samples) if self.cpu_samples else 0.0
        return {"cpu_percent_mean": mean, "rss_peak_mb": self.peak_rss / 1e6}


def _credit_earlier_attempts(
    completed: dict[int, Any], latency: LatencyRecorder, meter: ThroughputMeter
) -> dict[str, Any]:
    """Add the timing stored with an interrupted run's batches to this attempt's figures.

    A resumed run's throughput and latency then describe the whole evaluation, as an
    uninterrupted run's do. Batches checkpointed by an older Kiln carry no timing: the
    figures then cover the re-evaluated batches only, and the label says so.
    """
    timings = [entry["timing"] for entry in completed.values() if "timing" in entry]
    for timing in timings:
        latency.add(timing["latency_s"])
    meter.credit(
        samples=sum(int(t["samples"]) for t in timings),
        tokens=sum(int(t["tokens"]) for t in timings),
        padded_tokens=sum(int(t["padded_tokens"]) for t in timings),
        elapsed_s=sum(float(t["interval_s"]) for t in timings),
        batches=len(timings),
    )
    whole = len(timings) == len(completed)
    return {
        "covers": "whole evaluation" if whole else "re-evaluated batches only",
        "resumed_batches": len(completed),
    }


def _groups(
    batches: Iterable[tuple[PaddedBatch, Sequence[Encoded]]], size: int
) -> Iterator[list[tuple[PaddedBatch, Sequence[Encoded]]]]:
    """Batches in groups of ``size`` (the model's ``batches_per_call``), as they come."""
    iterator = iter(batches)
    while group := list(itertools.islice(iterator, size)):
        yield group


def evaluate(
    compiled: CompiledModel,
    batches: Iterable[tuple[PaddedBatch, Sequence[Encoded]]],
    examples: Sequence[TokenExample | TextExample],
    *,
    task: str,
    labels: Sequence[str],
    emit: Emit,
    cancelled: Callable[[], bool],
    total: int | None = None,
    score: bool = True,
    stage: str = "evaluate",
    clock: Callable[[], float] = time.perf_counter,
    numbers: Sequence[int] | None = None,
    completed: dict[int, Any] | None = None,
    checkpoint: Callable[[dict[int, Any]], None] | None = None,
    confidence: float = 0.95,
    until: float | None = None,
    shard_ends: Collection[int] = (),
    draw_order: np.ndarray | None = None,
    stop_requested: Callable[[], bool] | None = None,
) -> EvaluationResult:
    """Run every batch; ``score=False`` (performance-only) measures speed alone.

    ``batches`` yields each padded batch with its encoded examples, typically from
    :func:`core.encode.stream_batches`, which tokenises ahead on another thread.
    ``numbers`` are the batches' places in the plan; ``completed`` holds the predictions
    of batches an interrupted run already finished (they are not run again), and
    ``checkpoint`` receives new ones as they finish, so this run can be resumed too.
    A resumed run's speed figures include the earlier attempts' checkpointed batches
    (``covers`` and ``resumed_batches`` in its throughput say so).

    Every figure carries intervals at ``confidence``. With ``until``, the evaluation
    stops at the first shard boundary (``shard_ends``: the examples evaluated when
    each shard of a sharded :func:`core.encode.plan_batches` closes, whose shuffle is
    ``draw_order``) where the
    headline figure's anytime-valid interval for the whole split is narrower than
    ``until``; ``early_stop`` in the figures says when and with what. ``stop_requested``
    (the app's key) stops at the next shard boundary whatever the width.
    """
    scorer = Scorer(examples, task, labels, score, checkpoint, confidence)
    latency = LatencyRecorder()
    resources = ResourceSampler()
    total = len(examples) if total is None else total
    done = scorer.restore(completed) if completed else 0
    truncated = 0
    numbering = iter(numbers) if numbers is not None else itertools.count()
    last_emit = 0.0
    meter = ThroughputMeter(clock=clock)
    resumed = _credit_earlier_attempts(completed, latency, meter) if completed else {}

    stopped: dict[str, Any] = {}

    last: dict[str, Any] = {}

    def figures(final: bool) -> dict[str, Any]:
        if final and "final" in last:
            return last["final"]  # the bootstrap runs once per evaluation
        out = scorer.snapshot(total, final=final) | {"final": final}
        out["complete"] = scorer.seen() >= total and not stopped
        if stopped:
            out["early_stop"] = stopped
        if final:
            last["final"] = out
        return out

    def publish(final: bool = False) -> None:
        scorer.catch_up()
        emit(ProgressAdvanced(stage, done, total))
        if score and scorer.seen() > 0:
            emit(MetricSampled(stage, "accuracy", figures(final)))
        emit(MetricSampled(stage, "throughput", meter.summary() | latency.summary()))
        emit(MetricSampled(stage, "resources", resources.sample()))

    try:
        for group in _groups(batches, compiled.batches_per_call):
            if cancelled():
                publish()
                raise Cancelled(
                    f"cancelled after {done} of {total} samples",
                    hint="partial figures and events are kept in the run store",
                )
            start = clock()
            if len(group) == 1:
                outputs = [compiled.run(group[0][0].arrays)]
            else:
                outputs = compiled.run_many([batch.arrays for batch, _ in group])
            each = (clock() - start) / len(group)
            for (batch, encoded), logits in zip(group, outputs, strict=True):
                latency.add(each)
                interval = meter.add(batch.size, batch.real_tokens, batch.padded_tokens)
                timing = {
                    "latency_s": each,
                    "interval_s": interval,
                    "samples": batch.size,
                    "tokens": batch.real_tokens,
                    "padded_tokens": batch.padded_tokens,
                }
                number = next(numbering)
                scorer.submit(batch, encoded, logits, number, timing)
                truncated += sum(1 for e in encoded if e.truncated)
                done += batch.size
            now = clock()
            if now - last_emit >= SAMPLE_INTERVAL_S or len(group) > 1:
                last_emit = now
                publish()
            boundary = bool(score and done in shard_ends)
            if boundary and done < total and (until or stop_requested is not None):
                requested = stop_requested is not None and stop_requested()
                if until or requested:
                    scorer.catch_up()
                    order = draw_order if draw_order is not None else np.arange(len(examples))
                    prefix, interval = scorer.split_interval(order)
                    narrow = bool(until) and prefix >= MIN_EXAMPLES and interval.width <= until
                    if narrow or requested:
                        stopped = {
                            "after": scorer.seen(),
                            "of": total,
                            "width": until,
                            "requested": requested and not narrow,
                            "metric": next(iter(scorer.outcomes.streams())),
                            "interval": interval.to_dict(),
                        }
                        break
    finally:
        scorer.finish()
        close = getattr(batches, "close", None)
        if stopped and close is not None:
            close()  # the tokenizer thread stops too
    publish(final=True)
    return EvaluationResult(
        accuracy=dict(figures(final=True)) if score and scorer.seen() else None,
        throughput=meter.summary() | resumed,
        latency=latency.summary(),
        resources=resources.summary(),
        truncated=truncated,
        named=scorer.named,
        outcomes=scorer.outcomes if score and scorer.seen() else None,
    )
