"""Per-example outcomes of an evaluation, kept beside the pooled scores.

Pooled counts (:class:`RunningNer`, :class:`RunningClassification`) give the figures;
intervals and paired comparisons need to know how the figure splits across examples:
whether each example was right (classification), or each sentence's entity and token
counts (NER). These keep that, a few integers per example, keyed by example index so
two runs on the same examples can be paired. Live figures read only the running sums
of :class:`~kiln_lab.core.metrics.sequential.RatioStream` (O(1)); the arrays are
assembled once, for the final intervals.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kiln_lab.core.metrics.intervals import (
    DEFAULT_CONFIDENCE,
    SentenceCounts,
    as_dicts,
    class_intervals,
    classification_intervals,
    ner_intervals,
    wilson,
)
from kiln_lab.core.metrics.ner import TagTable, check_codes
from kiln_lab.core.metrics.sequential import RatioStream


def sentence_counts(
    table: TagTable,
    true: np.ndarray,
    pred: np.ndarray,
    lengths: np.ndarray,
    unseen: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per sentence: true positives, predicted and true entities (sentences x types, in
    ``table.types`` order), tokens seen and tokens correct; the same chunking as
    :meth:`RunningNer.update_codes`, so the columns sum to its pooled counts."""
    count = int(lengths.shape[0])
    first, last, kinds, span = table.chunks(
        np.concatenate((true, pred)), np.concatenate((lengths, lengths))
    )
    half, types = span // 2, max(len(table.types), 1)
    # The concatenated sequence has one O after each sentence: sentence k starts at
    # starts[k]; the predicted copy repeats them after ``half``.
    starts = np.concatenate(([0], np.cumsum(lengths + 1)[:-1])) if count else np.zeros(0)
    predicted = first >= half
    sentence = np.searchsorted(starts, first % half if half else first, side="right") - 1
    keys = ((first % half) * half + last % half) * types + kinds if half else kinds
    hits = np.isin(keys[predicted], keys[~predicted], assume_unique=True)

    def table_of(rows: np.ndarray, kinds_: np.ndarray) -> np.ndarray:
        out = np.zeros((count, types), dtype=np.int64)
        np.add.at(out, (rows, kinds_), 1)
        return out

    actual = table_of(sentence[~predicted], kinds[~predicted])
    pred_table = table_of(sentence[predicted], kinds[predicted])
    tp = table_of(sentence[predicted][hits], kinds[predicted][hits])
    token_sentence = np.repeat(np.arange(count), lengths)
    seen_mask = np.ones(true.shape[0], dtype=bool) if unseen is None else ~unseen
    seen = np.bincount(token_sentence[seen_mask], minlength=count)
    correct = np.bincount(token_sentence[seen_mask & (true == pred)], minlength=count)
    return tp, pred_table, actual, seen, correct


class NerOutcomes:
    """Each scored sentence's counts, plus running sums for the live interval."""

    def __init__(self, table: TagTable) -> None:
        self.table = table
        self._parts: list[tuple[np.ndarray, ...]] = []
        self.f1 = RatioStream()
        self.tokens = RatioStream()

    def add(
        self,
        indices: Sequence[int],
        true: np.ndarray,
        pred: np.ndarray,
        lengths: np.ndarray,
        unseen: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Add sentences (tag codes concatenated, ``lengths`` each); returns their
        :func:`sentence_counts`, whose column sums are the pooled counts."""
        check_codes(true, pred, lengths, unseen)
        counts = sentence_counts(self.table, true, pred, lengths, unseen)
        tp, predicted, actual, seen, correct = counts
        self._parts.append((np.asarray(indices, dtype=np.int64), *counts))
        self.f1.add(2 * tp.sum(1), predicted.sum(1) + actual.sum(1))
        self.tokens.add(correct, seen)
        return counts

    @property
    def main(self) -> RatioStream:
        return self.f1

    def streams(self) -> dict[str, RatioStream]:
        return {"entity_f1": self.f1, "token_accuracy": self.tokens}

    def counts(self) -> tuple[np.ndarray, SentenceCounts]:
        """Example indices (sorted) and their counts, types named as scored (O's ``_``
        type and types never seen dropped)."""
        types = len(self.table.types)
        if not self._parts:
            empty = np.zeros((0, 0), dtype=np.int64)
            return np.zeros(0, dtype=np.int64), SentenceCounts(
                empty, empty, empty, np.zeros(0), np.zeros(0), ()
            )

        def stack(column: int) -> np.ndarray:
            blocks = [part[column] for part in self._parts]
            return np.concatenate([np.pad(b, ((0, 0), (0, types - b.shape[1]))) for b in blocks])

        indices = np.concatenate([part[0] for part in self._parts])
        order = np.argsort(indices, kind="stable")
        tp, predicted, actual = stack(1)[order], stack(2)[order], stack(3)[order]
        keep = [
            i
            for i, name in enumerate(self.table.types)
            if name != "_" and (predicted[:, i].any() or actual[:, i].any())
        ]
        seen = np.concatenate([part[4] for part in self._parts])[order]
        correct = np.concatenate([part[5] for part in self._parts])[order]
        names = tuple(self.table.types[i] for i in keep)
        return indices[order], SentenceCounts(
            tp[:, keep], predicted[:, keep], actual[:, keep], seen, correct, names
        )

    def intervals(self, confidence: float = DEFAULT_CONFIDENCE) -> dict:
        return as_dicts(ner_intervals(self.counts()[1], confidence))

    def ratio_terms(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Example indices (sorted) with entity F1's ``y`` (2 x true positives) and ``x``
        (predicted + true entities): F1 = Σy / Σx."""
        indices, counts = self.counts()
        y = 2 * counts.true_positives.sum(1)
        return indices, y, counts.predicted.sum(1) + counts.actual.sum(1)


class ClassificationOutcomes:
    """Whether each scored example was right, and its language where the data says."""

    def __init__(self, labels: Sequence[str] = ()) -> None:
        self.labels = list(dict.fromkeys(labels))
        """The classes macro F1 and the per-class intervals cover (the model's labels)."""
        self._codes = {name: i for i, name in enumerate(self.labels)}
        self._indices: list[np.ndarray] = []
        self._correct: list[np.ndarray] = []
        self._true: list[int] = []
        self._pred: list[int] = []
        self._languages: list[str | None] = []
        self._by_language: dict[str, list[int]] = {}
        """Running [right, seen] per language, so the live table costs O(languages)."""
        self.accuracy = RatioStream()

    def add(
        self,
        indices: Sequence[int],
        correct: np.ndarray,
        languages: Sequence[str | None],
        true: Sequence[str] = (),
        pred: Sequence[str] = (),
    ) -> None:
        """Add examples: whether each was right, its language, and (for the per-class
        intervals) its true and predicted labels."""
        correct = np.asarray(correct, dtype=bool)
        self._indices.append(np.asarray(indices, dtype=np.int64))
        self._correct.append(correct)
        self._languages.extend(languages)
        for language, right in zip(languages, correct.tolist(), strict=True):
            if language:
                tally = self._by_language.setdefault(language, [0, 0])
                tally[0] += right
                tally[1] += 1
        self._true.extend(self._codes.get(label, -1) for label in true)
        self._pred.extend(self._codes.get(label, -1) for label in pred)
        self.accuracy.add(correct, np.ones(correct.shape[0]))

    @property
    def main(self) -> RatioStream:
        return self.accuracy

    def streams(self) -> dict[str, RatioStream]:
        return {"accuracy": self.accuracy}

    def counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Example indices (sorted), whether each was right, and each one's language."""
        if not self._indices:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool), np.zeros(0, dtype=object)
        indices = np.concatenate(self._indices)
        order = np.argsort(indices, kind="stable")
        languages = np.asarray(self._languages, dtype=object)
        return indices[order], np.concatenate(self._correct)[order], languages[order]

    def languages(self) -> dict[str, np.ndarray]:
        """A mask per language (none when the data has no language column)."""
        _, _, languages = self.counts()
        names = sorted({name for name in languages.tolist() if name})
        return {name: languages == name for name in names}

    def live_per_language(self, confidence: float = DEFAULT_CONFIDENCE) -> dict:
        """:meth:`per_language` from running tallies: cheap enough for every live refresh."""
        return {
            name: {
                "accuracy": right / seen,
                "count": seen,
                "interval": wilson(right, seen, confidence).to_dict(),
            }
            for name, (right, seen) in sorted(self._by_language.items())
        }

    def per_language(self, confidence: float = DEFAULT_CONFIDENCE) -> dict:
        """Accuracy per language with its Wilson interval: the XNLI breakdown table."""
        _, correct, _ = self.counts()
        groups = self.languages()
        intervals = classification_intervals(correct, groups, confidence).get("per_language", {})
        return {
            name: {
                "accuracy": float(correct[mask].mean()) if mask.any() else 0.0,
                "count": int(mask.sum()),
                "interval": intervals[name].to_dict(),
            }
            for name, mask in groups.items()
        }

    def intervals(self, confidence: float = DEFAULT_CONFIDENCE) -> dict:
        """Wilson for accuracy; a bootstrap for macro F1 and per class where the labels
        were given."""
        _, correct, _ = self.counts()
        out = classification_intervals(correct, None, confidence)
        if self.labels and len(self._true) == correct.shape[0]:
            order = np.argsort(np.concatenate(self._indices), kind="stable")
            true = np.asarray(self._true, dtype=np.int64)[order]
            pred = np.asarray(self._pred, dtype=np.int64)[order]
            out |= class_intervals(true, pred, self.labels, confidence)
        return as_dicts(out)

    def ratio_terms(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Example indices (sorted) with accuracy's ``y`` (right or not) and ``x`` (1)."""
        indices, correct, _ = self.counts()
        return indices, correct.astype(np.float64), np.ones(correct.shape[0])
