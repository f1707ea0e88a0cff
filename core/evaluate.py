"""The evaluation loop: run every batch, decode, score as it goes, report live.

Live figures are throttled at the source (a few snapshots a second), so a fast model
cannot flood the store or an SSH link; the final snapshot is always emitted.
"""

from __future__ import annotations

import base64
import functools
import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psutil

from kiln_lab.core.data import TextExample, TokenExample
from kiln_lab.core.encode import PaddedBatch, label_table
from kiln_lab.core.errors import Cancelled
from kiln_lab.core.events import Event, MetricSampled, ProgressAdvanced
from kiln_lab.core.metrics import (
    LatencyRecorder,
    RunningClassification,
    RunningNer,
    TagTable,
    ThroughputMeter,
)
from kiln_lab.core.metrics.intervals import Interval
from kiln_lab.core.metrics.outcomes import ClassificationOutcomes, NerOutcomes
from kiln_lab.core.metrics.sequential import MIN_EXAMPLES, split_interval
from kiln_lab.core.runtimes import CompiledModel
from kiln_lab.core.tokenization import Encoded

Emit = Callable[[Event], None]
SAMPLE_INTERVAL_S = 0.25
CHECKPOINT_INTERVAL_S = 1.0
GROUP_BATCHES = 16
"""Finished batches scored in one go (live figures catch up before each sample)."""


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


def _split(flat: list[Any], lengths: Sequence[int]) -> list[list[Any]]:
    """``flat`` cut into consecutive pieces of ``lengths``."""
    bounds = list(itertools.accumulate(lengths, initial=0))
    return [flat[bounds[i] : bounds[i + 1]] for i in range(len(lengths))]


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


class _Scorer:
    """Decodes and scores finished batches, several at a time, on the evaluating thread.

    ONNX Runtime's threads already fill every core, so a scoring thread beside them
    overlapped nothing: measured on two cores it cost the same wall time as scoring in
    line, plus the GIL hand-offs. Batches are scored in groups instead: one numpy call
    for a group of batches costs little more than for one. NER batches are decoded and scored
    as arrays (tag codes, not strings): per token, Python would cost as much as a small
    model's inference. Tag strings are made only when someone asks for predictions.
    """

    def __init__(
        self,
        examples: Sequence[Any],
        task: str,
        labels: Sequence[str],
        score: bool,
        checkpoint: Callable[[dict[int, Any]], None] | None = None,
        confidence: float = 0.95,
    ) -> None:
        self.examples = examples
        self.ner = task == "token-classification"
        self.labels = labels
        self.label_names = label_table(labels)
        """Model label index -> tag name; the extra last index is O."""
        self.score = score
        self.running: RunningNer | RunningClassification = (
            RunningNer(TagTable(labels)) if self.ner else RunningClassification(labels)
        )
        self.outcomes: NerOutcomes | ClassificationOutcomes = (
            NerOutcomes(self.running.table)
            if isinstance(self.running, RunningNer)
            else ClassificationOutcomes()
        )
        """Per-example outcomes: the intervals' and the paired comparison's input."""
        self.confidence = confidence
        if isinstance(self.running, RunningNer):
            tags = self.running.table
            # Model label index -> tag code; the extra last entry is O (truncated words).
            self.label_codes = np.array([*map(tags.code, labels), tags.outside], dtype=np.int32)
        self.waiting: list[tuple[PaddedBatch, Sequence[Encoded], np.ndarray, int]] = []
        self.decoded: list[tuple[tuple[int, ...], np.ndarray, np.ndarray]] = []
        self.predictions: list[Any] = [None] * len(examples)
        self.checkpoint = checkpoint
        self.pending: dict[int, Any] = {}
        self.timings: dict[int, dict[str, float]] = {}
        """Each pending batch's timing, checkpointed with it so a resumed run's speed
        figures cover the whole evaluation, not only the batches it ran again."""
        self.last_flush = time.monotonic()

    def submit(
        self,
        batch: PaddedBatch,
        encoded: Sequence[Encoded],
        logits: np.ndarray,
        number: int,
        timing: dict[str, float] | None = None,
    ) -> None:
        self.waiting.append((batch, encoded, logits, number))
        if self.checkpoint and timing is not None:
            self.timings[number] = timing
        if len(self.waiting) >= GROUP_BATCHES:
            self.catch_up()

    def catch_up(self) -> None:
        """Score every waiting batch (before figures are read) and checkpoint if due."""
        items, self.waiting = self.waiting, []
        if items:
            self._score(items)
        self._flush()

    def finish(self) -> None:
        self.catch_up()
        self._flush(force=True)

    def _flush(self, force: bool = False) -> None:
        """Checkpoint finished batches about once a second (one short transaction)."""
        if not self.checkpoint or not self.pending:
            return
        if force or time.monotonic() - self.last_flush >= CHECKPOINT_INTERVAL_S:
            items, self.pending = self.pending, {}
            self.checkpoint(
                {
                    number: (self._packed(*item) if isinstance(item, tuple) else item)
                    | ({"timing": self.timings.pop(number)} if number in self.timings else {})
                    for number, item in items.items()
                }
            )
            self.last_flush = time.monotonic()

    def _packed(
        self, indices: Sequence[int], label_ids: np.ndarray, lengths: np.ndarray
    ) -> dict[str, Any]:
        """One NER batch's checkpoint: label indices as bytes, not a string per word
        (JSON for 184k tag strings cost more than the scoring itself)."""
        return {
            "indices": list(indices),
            "lengths": lengths.tolist(),
            "tags": self.label_names.tolist(),
            "label_ids": base64.b64encode(label_ids.astype("<u2").tobytes()).decode("ascii"),
        }

    @staticmethod
    def _unpacked(entry: dict[str, Any]) -> list[Any]:
        """The per-example predictions of a checkpoint entry, packed or not."""
        if "predictions" in entry:
            return entry["predictions"]
        ids = np.frombuffer(base64.b64decode(entry["label_ids"]), dtype="<u2")
        return _split(np.asarray(entry["tags"], dtype=object)[ids].tolist(), entry["lengths"])

    def named(self) -> list[Any]:
        """Every example's prediction as strings (NER batches are named on demand)."""
        for indices, label_ids, lengths in self.decoded:
            tags = _split(self.label_names[label_ids].tolist(), lengths.tolist())
            for index, words in zip(indices, tags, strict=True):
                self.predictions[index] = words
        self.decoded = []
        return self.predictions

    def restore(self, completed: dict[int, Any]) -> int:
        """Count batches finished by an earlier, interrupted run; returns their samples."""
        samples = 0
        for number in sorted(completed):
            indices, preds = completed[number]["indices"], self._unpacked(completed[number])
            truth = [self._truth(i) for i in indices]
            for index, pred in zip(indices, preds, strict=True):
                self.predictions[index] = pred
            if self.score and isinstance(self.running, RunningNer):
                unseen = self._unseen(completed[number])
                self.running.update(truth, preds, unseen)
                table = self.running.table
                lengths = np.fromiter(map(len, truth), dtype=np.int64, count=len(truth))
                self.outcomes.add(  # type: ignore[call-arg]
                    indices, table.encode(truth), table.encode(preds), lengths, unseen
                )
            elif self.score:
                self.running.update(truth, preds)
                self._add_classified(indices, truth, preds)
            samples += len(indices)
        return samples

    @staticmethod
    def _unseen(entry: dict[str, Any]) -> np.ndarray | None:
        """A packed NER checkpoint's truncated words: the trailing ``O`` of its tag table
        (the model's own ``O`` has another index), so a resumed run leaves them out of
        token accuracy as the uninterrupted run does. None for the unpacked form."""
        if "label_ids" not in entry:
            return None
        ids = np.frombuffer(base64.b64decode(entry["label_ids"]), dtype="<u2")
        return ids == len(entry["tags"]) - 1

    def _truth(self, index: int) -> Any:
        example = self.examples[index]
        return list(example.tags) if self.ner else example.label

    def _score(
        self, items: Sequence[tuple[PaddedBatch, Sequence[Encoded], np.ndarray, int]]
    ) -> None:
        if self.ner:
            self._score_tokens(items)
            return
        truth, preds = [], []
        for batch, _encoded, logits, number in items:
            best = logits[: batch.size].argmax(-1)
            batch_preds = [self.labels[int(label)] for label in best]
            for index, pred in zip(batch.indices, batch_preds, strict=True):
                truth.append(self.examples[index].label)
                self.predictions[index] = pred
            preds.extend(batch_preds)
            if self.checkpoint:
                self.pending[number] = {"indices": list(batch.indices), "predictions": batch_preds}
        if self.score:
            self.running.update(truth, preds)
            self._add_classified([i for b, *_ in items for i in b.indices], truth, preds)

    def _add_classified(self, indices: Sequence[int], truth: list[Any], preds: list[Any]) -> None:
        correct = np.fromiter(map(str.__eq__, truth, preds), dtype=bool, count=len(truth))
        languages = [getattr(self.examples[i], "language", None) for i in indices]
        self.outcomes.add(indices, correct, languages)  # type: ignore[call-arg]

    def _score_tokens(
        self, items: Sequence[tuple[PaddedBatch, Sequence[Encoded], np.ndarray, int]]
    ) -> None:
        """Each word takes its first sub-token's label (O where truncation cut it off).

        Cut-off words count for entity scores as predicted O, but not for token accuracy:
        the model never saw them (``truncated_tokens`` says how many were left out).
        """
        label_parts, length_parts, unseen_parts, truth = [], [], [], []
        for batch, _encoded, logits, number in items:
            assert batch.word_starts is not None and batch.word_counts is not None
            best = logits[: batch.size, : batch.width].argmax(-1).ravel()
            starts = batch.word_starts
            label_ids = np.where(starts >= 0, best[starts], len(self.labels))
            self.decoded.append((batch.indices, label_ids, batch.word_counts))
            if self.checkpoint:
                self.pending[number] = (batch.indices, label_ids, batch.word_counts)
            label_parts.append(label_ids)
            length_parts.append(batch.word_counts)
            unseen_parts.append(starts < 0)
            truth.extend(self.examples[index].tags for index in batch.indices)
        if self.score:
            running = self.running
            assert isinstance(running, RunningNer)
            codes = running.table.encode(truth)
            predicted = self.label_codes[np.concatenate(label_parts)]
            lengths, unseen = np.concatenate(length_parts), np.concatenate(unseen_parts)
            running.update_codes(codes, predicted, lengths, unseen)
            indices = [i for batch, *_ in items for i in batch.indices]
            self.outcomes.add(indices, codes, predicted, lengths, unseen)  # type: ignore[call-arg]

    def seen(self) -> int:
        running = self.running
        return running.sentences if self.ner else running.count  # type: ignore[union-attr]

    def snapshot(self, total: int, final: bool = False) -> dict[str, Any]:
        """The figures so far with the live confidence sequence of each headline figure
        (O(1) to read); ``final`` adds the fixed-sample intervals (a bootstrap for NER,
        milliseconds) and, for data with a language column, the per-language table."""
        figures = self.running.snapshot().to_dict() | {"confidence": self.confidence}
        figures["sequence"] = {
            name: stream.interval(self.confidence, total).to_dict()
            for name, stream in self.outcomes.streams().items()
        }
        if final:
            figures["intervals"] = self.outcomes.intervals(self.confidence)
            if isinstance(self.outcomes, ClassificationOutcomes):
                per_language = self.outcomes.per_language(self.confidence)
                if per_language:
                    figures["per_language"] = per_language
        return figures

    def split_interval(self, draw_order: np.ndarray) -> tuple[int, Interval]:
        """The headline figure's interval for the whole split (see
        :func:`~kiln_lab.core.metrics.sequential.split_interval`) from the longest prefix
        of the random ``draw_order`` whose examples are all scored, and that prefix's size."""
        indices, y, x = self.outcomes.ratio_terms()
        place = np.full(len(self.examples), -1, dtype=np.int64)
        place[indices] = np.arange(indices.shape[0])
        drawn = place[draw_order]
        prefix = int(np.argmin(drawn >= 0)) if (drawn < 0).any() else drawn.shape[0]
        rows = drawn[:prefix]
        interval = split_interval(y[rows], x[rows], len(self.examples), self.confidence)
        return prefix, interval


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
    shard_batches: int | None = None,
    draw_order: np.ndarray | None = None,
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
    stops at the first shard boundary (every ``shard_batches`` batches, see
    :func:`core.encode.plan_batches`, whose shuffle is ``draw_order``) where the
    headline figure's anytime-valid interval for the whole split is narrower than
    ``until``; ``early_stop`` in the figures says when and with what.
    """
    scorer = _Scorer(examples, task, labels, score, checkpoint, confidence)
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
            if until and score and shard_batches and (number + 1) % shard_batches == 0:
                scorer.catch_up()
                order = draw_order if draw_order is not None else np.arange(len(examples))
                prefix, interval = scorer.split_interval(order)
                if done < total and prefix >= MIN_EXAMPLES and interval.width <= until:
                    stopped = {
                        "after": scorer.seen(),
                        "of": total,
                        "width": until,
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
