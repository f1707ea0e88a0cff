"""The evaluation loop: run every batch, decode, score as it goes, report live.

Live figures are throttled at the source (a few snapshots a second), so a fast model
cannot flood the store or an SSH link; the final snapshot is always emitted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil

from core.data import TextExample, TokenExample
from core.encode import Encoded, PaddedBatch, decode_class, decode_tags
from core.errors import Cancelled
from core.events import Event, MetricSampled, ProgressAdvanced
from core.metrics import LatencyRecorder, RunningClassification, RunningNer, ThroughputMeter
from core.runtimes import CompiledModel

Emit = Callable[[Event], None]
SAMPLE_INTERVAL_S = 0.25


@dataclass
class EvaluationResult:
    accuracy: dict[str, Any] | None
    throughput: dict[str, Any]
    latency: dict[str, Any]
    resources: dict[str, Any]
    truncated: int
    predictions: list[Any] = field(default_factory=list)


class ResourceSampler:
    """CPU % and RSS of this process (the one running the model)."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.process.cpu_percent(None)
        self.peak_rss = 0
        self.cpu_samples: list[float] = []

    def sample(self) -> dict[str, float]:
        cpu = self.process.cpu_percent(None)
        rss = self.process.memory_info().rss
        self.peak_rss = max(self.peak_rss, rss)
        self.cpu_samples.append(cpu)
        return {"cpu_percent": cpu, "rss_mb": rss / 1e6}

    def summary(self) -> dict[str, float]:
        mean = sum(self.cpu_samples) / len(self.cpu_samples) if self.cpu_samples else 0.0
        return {"cpu_percent_mean": mean, "rss_peak_mb": self.peak_rss / 1e6}


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
) -> EvaluationResult:
    """Run every batch; ``score=False`` (performance-only) measures speed alone.

    ``batches`` yields each padded batch with its encoded examples, typically from
    :func:`core.encode.stream_batches`, which tokenises ahead on another thread.
    """
    ner = task == "token-classification"
    running: RunningNer | RunningClassification = (
        RunningNer() if ner else RunningClassification(labels)
    )
    latency = LatencyRecorder()
    resources = ResourceSampler()
    predictions: list[Any] = [None] * len(examples)
    total = len(examples) if total is None else total
    done = truncated = 0
    last_emit = 0.0
    meter = ThroughputMeter(clock=clock)

    def seen() -> int:
        return running.sentences if ner else running.count  # type: ignore[union-attr]

    def publish(final: bool = False) -> None:
        emit(ProgressAdvanced(stage, done, total))
        if score and seen() > 0:
            emit(MetricSampled(stage, "accuracy", running.snapshot().to_dict() | {"final": final}))
        emit(MetricSampled(stage, "throughput", meter.summary() | latency.summary()))
        emit(MetricSampled(stage, "resources", resources.sample()))

    for batch, encoded in batches:
        if cancelled():
            publish()
            raise Cancelled(
                f"cancelled after {done} of {total} samples",
                hint="partial figures and events are kept in the run store",
            )
        start = clock()
        logits = compiled.run(batch.arrays)
        latency.add(clock() - start)
        meter.add(batch.size, batch.real_tokens, batch.padded_tokens)
        by_index = {e.index: e for e in encoded}
        truth, preds = [], []
        for row, index in enumerate(batch.indices):
            example = examples[index]
            if ner:
                pred: Any = decode_tags(logits, row, by_index[index], labels)
                truth.append(list(example.tags))  # type: ignore[union-attr]
            else:
                pred = decode_class(logits, row, labels)
                truth.append(example.label)  # type: ignore[union-attr]
            preds.append(pred)
            predictions[index] = pred
        truncated += sum(1 for e in encoded if e.truncated)
        if score:
            running.update(truth, preds)
        done += batch.size
        now = clock()
        if now - last_emit >= SAMPLE_INTERVAL_S:
            last_emit = now
            publish()
    publish(final=True)
    return EvaluationResult(
        accuracy=running.snapshot().to_dict() if score and seen() else None,
        throughput=meter.summary(),
        latency=latency.summary(),
        resources=resources.summary(),
        truncated=truncated,
        predictions=predictions,
    )
