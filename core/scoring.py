"""Scoring finished batches during an evaluation: decode, score, keep per-example
outcomes for the intervals, checkpoint for resume. The loop that feeds it is
:mod:`kiln_lab.core.evaluate`.
"""

from __future__ import annotations

import base64
import itertools
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from kiln_lab.core.encode import PaddedBatch, label_table
from kiln_lab.core.metrics import RunningClassification, RunningNer, TagTable
from kiln_lab.core.metrics.intervals import Interval
from kiln_lab.core.metrics.outcomes import ClassificationOutcomes, NerOutcomes
from kiln_lab.core.metrics.sequential import split_interval
from kiln_lab.core.tokenization import Encoded

CHECKPOINT_INTERVAL_S = 1.0
GROUP_BATCHES = 16
"""Finished batches scored in one go (live figures catch up before each sample)."""


def _split(flat: list[Any], lengths: Sequence[int]) -> list[list[Any]]:
    """``flat`` cut into consecutive pieces of ``lengths``."""
    bounds = list(itertools.accumulate(lengths, initial=0))
    return [flat[bounds[i] : bounds[i + 1]] for i in range(len(lengths))]


class Scorer:
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
            else ClassificationOutcomes(labels)
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
        (JSON for 184k tag strings cost more than the scoring itself), deflated: mostly
        ``O``, they shrink 15-fold (the demo's test split: 0.55 MB of checkpoints a pass
        became about 0.06 MB, for 1.7 ms of compression), and the store writes less."""
        ids = zlib.compress(label_ids.astype("<u2").tobytes(), 1)
        return {
            "indices": list(indices),
            "lengths": lengths.tolist(),
            "tags": self.label_names.tolist(),
            "label_ids_deflated": base64.b64encode(ids).decode("ascii"),
        }

    @staticmethod
    def _label_ids(entry: dict[str, Any]) -> np.ndarray:
        """A packed NER checkpoint's label indices (deflated, or plain from older Kiln)."""
        if "label_ids_deflated" in entry:
            raw = zlib.decompress(base64.b64decode(entry["label_ids_deflated"]))
        else:
            raw = base64.b64decode(entry["label_ids"])
        return np.frombuffer(raw, dtype="<u2")

    @staticmethod
    def _unpacked(entry: dict[str, Any]) -> list[Any]:
        """The per-example predictions of a checkpoint entry, packed or not."""
        if "predictions" in entry:
            return entry["predictions"]
        ids = Scorer._label_ids(entry)
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
        if "predictions" in entry:
            return None
        return Scorer._label_ids(entry) == len(entry["tags"]) - 1

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
        self.outcomes.add(indices, correct, languages, truth, preds)  # type: ignore[call-arg]

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
            indices = [i for batch, *_ in items for i in batch.indices]
            outcomes = self.outcomes
            assert isinstance(outcomes, NerOutcomes)
            # Entities are found once: the per-sentence counts the intervals keep sum to
            # the pooled counts of the live figures.
            counts = outcomes.add(indices, codes, predicted, lengths, unseen)
            running.add_sentence_counts(counts, truncated=int(np.count_nonzero(unseen)))

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
        if isinstance(self.outcomes, ClassificationOutcomes):
            outcomes = self.outcomes
            per_language = (
                outcomes.per_language(self.confidence)
                if final
                else outcomes.live_per_language(self.confidence)
            )
            if per_language:
                figures["per_language"] = per_language
        if final:
            figures["intervals"] = self.outcomes.intervals(self.confidence)
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
