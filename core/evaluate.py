"""The evaluation loop: run every batch, decode, score as it goes, report live.

Live figures are throttled at the source (a few snapshots a second), so a fast model
cannot flood the store or an SSH link; the final snapshot is always emitted.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psutil

from core.data import TextExample, TokenExample
from core.encode import Encoded, PaddedBatch, decode_word_tags, label_table
from core.errors import Cancelled
from core.events import Event, MetricSampled, ProgressAdvanced
from core.metrics import LatencyRecorder, RunningClassification, RunningNer, ThroughputMeter
from core.runtimes import CompiledModel

Emit = Callable[[Event], None]
SAMPLE_INTERVAL_S = 0.25
CHECKPOINT_INTERVAL_S = 1.0


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
        from core.benchmark import nvml_device

        self.process = psutil.Process()
        self.process.cpu_percent(None)
        self.peak_rss = 0
        self.cpu_samples: list[float] = []
        self.gpu = nvml_device()

    def sample(self) -> dict[str, float]:
        from core.benchmark import gpu_sample

        cpu = self.process.cpu_percent(None)
        rss = self.process.memory_info().rss
        self.peak_rss = max(self.peak_rss, rss)
        self.cpu_samples.append(cpu)
        return {"cpu_percent": cpu, "rss_mb": rss / 1e6} | gpu_sample(self.gpu)

    def summary(self) -> dict[str, float]:
        mean = sum(self.cpu_samples) / len(self.cpu_samples) if self.cpu_samples else 0.0
        return {"cpu_percent_mean": mean, "rss_peak_mb": self.peak_rss / 1e6}


class _Scorer:
    """Decodes and scores finished batches on a thread of its own.

    ONNX Runtime releases the GIL while it runs, so on two cores the next batch's
    inference overlaps this batch's decoding and live metrics instead of waiting for them.
    """

    def __init__(
        self,
        examples: Sequence[Any],
        task: str,
        labels: Sequence[str],
        score: bool,
        checkpoint: Callable[[dict[int, Any]], None] | None = None,
    ) -> None:
        self.examples = examples
        self.ner = task == "token-classification"
        self.labels = labels
        self.table = label_table(labels)
        self.score = score
        self.running: RunningNer | RunningClassification = (
            RunningNer() if self.ner else RunningClassification(labels)
        )
        self.predictions: list[Any] = [None] * len(examples)
        self.lock = threading.Lock()
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=8)
        self.error: BaseException | None = None
        self.checkpoint = checkpoint
        self.pending: dict[int, Any] = {}
        self.last_flush = time.monotonic()
        self.thread = threading.Thread(target=self._run, name="kiln-scorer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                self._flush(force=True)
                return
            if self.error is not None:
                continue
            try:
                self._score(*item)
                self._flush()
            except BaseException as exc:  # noqa: BLE001 - re-raised on the main thread
                self.error = exc

    def _flush(self, force: bool = False) -> None:
        """Checkpoint finished batches about once a second (one short transaction)."""
        if not self.checkpoint or not self.pending:
            return
        if force or time.monotonic() - self.last_flush >= CHECKPOINT_INTERVAL_S:
            items, self.pending = self.pending, {}
            self.checkpoint(items)
            self.last_flush = time.monotonic()

    def restore(self, completed: dict[int, Any]) -> int:
        """Count batches finished by an earlier, interrupted run; returns their samples."""
        samples = 0
        for number in sorted(completed):
            indices, preds = completed[number]["indices"], completed[number]["predictions"]
            truth = [self._truth(i) for i in indices]
            for index, pred in zip(indices, preds, strict=True):
                self.predictions[index] = pred
            if self.score:
                self.running.update(truth, preds)
            samples += len(indices)
        return samples

    def _truth(self, index: int) -> Any:
        example = self.examples[index]
        return list(example.tags) if self.ner else example.label

    def _score(
        self, batch: PaddedBatch, encoded: Sequence[Encoded], logits: np.ndarray, number: int
    ) -> None:
        best = logits[: batch.size].argmax(-1)
        truth, preds = [], []
        if self.ner:
            by_index = {e.index: e for e in encoded}
            for row, index in enumerate(batch.indices):
                pred: Any = decode_word_tags(best, row, by_index[index], self.table)
                truth.append(list(self.examples[index].tags))
                preds.append(pred)
                self.predictions[index] = pred
        else:
            for row, index in enumerate(batch.indices):
                pred = self.labels[int(best[row])]
                truth.append(self.examples[index].label)
                preds.append(pred)
                self.predictions[index] = pred
        if self.score:
            with self.lock:
                self.running.update(truth, preds)
        if self.checkpoint:
            self.pending[number] = {"indices": list(batch.indices), "predictions": preds}

    def submit(
        self, batch: PaddedBatch, encoded: Sequence[Encoded], logits: np.ndarray, number: int
    ) -> None:
        self._raise()
        self.queue.put((batch, encoded, logits, number))

    def seen(self) -> int:
        with self.lock:
            running = self.running
            return running.sentences if self.ner else running.count  # type: ignore[union-attr]

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return self.running.snapshot().to_dict()

    def finish(self) -> None:
        self.queue.put(None)
        self.thread.join()
        self._raise()

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error


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
) -> EvaluationResult:
    """Run every batch; ``score=False`` (performance-only) measures speed alone.

    ``batches`` yields each padded batch with its encoded examples, typically from
    :func:`core.encode.stream_batches`, which tokenises ahead on another thread.
    ``numbers`` are the batches' places in the plan; ``completed`` holds the predictions
    of batches an interrupted run already finished (they are not run again), and
    ``checkpoint`` receives new ones as they finish, so this run can be resumed too.
    """
    scorer = _Scorer(examples, task, labels, score, checkpoint)
    latency = LatencyRecorder()
    resources = ResourceSampler()
    total = len(examples) if total is None else total
    done = scorer.restore(completed) if completed else 0
    truncated = 0
    numbering = iter(numbers) if numbers is not None else itertools.count()
    last_emit = 0.0
    meter = ThroughputMeter(clock=clock)

    def publish(final: bool = False) -> None:
        emit(ProgressAdvanced(stage, done, total))
        if score and scorer.seen() > 0:
            emit(MetricSampled(stage, "accuracy", scorer.snapshot() | {"final": final}))
        emit(MetricSampled(stage, "throughput", meter.summary() | latency.summary()))
        emit(MetricSampled(stage, "resources", resources.sample()))

    try:
        for batch, encoded in batches:
            if cancelled():
                scorer.finish()
                publish()
                raise Cancelled(
                    f"cancelled after {done} of {total} samples",
                    hint="partial figures and events are kept in the run store",
                )
            start = clock()
            logits = compiled.run(batch.arrays)
            latency.add(clock() - start)
            meter.add(batch.size, batch.real_tokens, batch.padded_tokens)
            scorer.submit(batch, encoded, logits, next(numbering))
            truncated += sum(1 for e in encoded if e.truncated)
            done += batch.size
            now = clock()
            if now - last_emit >= SAMPLE_INTERVAL_S:
                last_emit = now
                publish()
    finally:
        if scorer.thread.is_alive():
            scorer.finish()
    publish(final=True)
    return EvaluationResult(
        accuracy=scorer.snapshot() if score and scorer.seen() else None,
        throughput=meter.summary(),
        latency=latency.summary(),
        resources=resources.summary(),
        truncated=truncated,
        predictions=scorer.predictions,
    )
