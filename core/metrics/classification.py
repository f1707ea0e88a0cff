"""Accuracy and macro F1 for sentence classification (SST-2, ChnSentiCorp, XNLI).

Accuracy is the figure the vendor guides report; macro F1 (sklearn's
``f1_score(average="macro")``) is kept beside it because a model that collapses to one
class can keep a respectable accuracy on a skewed set while its macro F1 drops. Scores
come from per-class counts, so ``RunningClassification`` can refresh a live pane cheaply.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from kiln_lab.core.errors import DataError
from kiln_lab.core.metrics.scores import ClassScore, divide

_HINT = "pass one true label and one predicted label per sample, in the same order"


@dataclass(frozen=True)
class ClassificationScores:
    """Accuracy, macro F1 and per-class P/R/F1 for a set of samples.

    ``per_class`` follows the ``labels`` given to the scorer, in that order, or else
    every label seen in the true or predicted values, sorted.
    """

    accuracy: float
    macro_f1: float
    count: int
    per_class: dict[str, ClassScore]

    def to_dict(self) -> dict:
        """A plain JSON-able dict, with the figure names model cards refer to."""
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "count": self.count,
            "per_class": {name: score.to_dict() for name, score in self.per_class.items()},
        }


def _class_score(true_positives: int, predicted: int, actual: int) -> ClassScore:
    """P/R/F1 with sklearn's arithmetic (F1 = 2 TP / (true + predicted)); 0.0 when undefined."""
    return ClassScore(
        precision=divide(true_positives, predicted),
        recall=divide(true_positives, actual),
        f1=divide(2 * true_positives, actual + predicted),
        support=actual,
    )


class RunningClassification:
    """Classification scores accumulated batch by batch, for live panes.

    With ``labels``, per-class figures and macro F1 cover exactly those labels (as
    sklearn does with ``labels=``): a label never seen still counts, with F1 0, and a
    value outside them counts only towards accuracy. Without, they cover every label
    seen so far.
    """

    def __init__(self, labels: Sequence[str] | None = None) -> None:
        if labels is not None:
            if isinstance(labels, str) or not labels:
                raise DataError(
                    f"labels must be a non-empty list of class names, got {labels!r}",
                    hint="pass the model card's labels, or None to use the labels seen",
                )
            labels = list(dict.fromkeys(labels))
        self._labels: list[str] | None = labels
        self._true_positives: Counter[str] = Counter()
        self._predicted: Counter[str] = Counter()
        self._actual: Counter[str] = Counter()
        self._correct = 0
        self._count = 0

    @property
    def count(self) -> int:
        """Samples scored so far."""
        return self._count

    def update(self, true_batch: Sequence[str], pred_batch: Sequence[str]) -> None:
        """Add samples; raises ``DataError`` (and adds nothing) if they do not align."""
        for name, batch in (("true", true_batch), ("predicted", pred_batch)):
            if isinstance(batch, str):
                raise DataError(f"{name} labels must be a list of labels, not a string", hint=_HINT)
        if len(true_batch) != len(pred_batch):
            raise DataError(
                f"{len(true_batch)} true labels but {len(pred_batch)} predicted", hint=_HINT
            )
        self._actual.update(true_batch)
        self._predicted.update(pred_batch)
        hits = [t for t, p in zip(true_batch, pred_batch, strict=True) if t == p]
        self._true_positives.update(hits)
        self._correct += len(hits)
        self._count += len(true_batch)

    def snapshot(self) -> ClassificationScores:
        """The scores so far, as an immutable value."""
        labels = self._labels
        if labels is None:
            labels = sorted(set(self._actual) | set(self._predicted))
        per_class = {
            label: _class_score(
                self._true_positives[label], self._predicted[label], self._actual[label]
            )
            for label in labels
        }
        macro_f1 = sum(s.f1 for s in per_class.values()) / len(per_class) if per_class else 0.0
        return ClassificationScores(
            accuracy=divide(self._correct, self._count),
            macro_f1=macro_f1,
            count=self._count,
            per_class=per_class,
        )


def score_classification(
    true: Sequence[str], pred: Sequence[str], labels: Sequence[str] | None = None
) -> ClassificationScores:
    """Accuracy, macro F1 and per-class scores; see ``RunningClassification`` for ``labels``.

    Accuracy is 0.0 for no samples. Raises ``DataError`` if the lengths differ.
    """
    running = RunningClassification(labels)
    running.update(true, pred)
    return running.snapshot()
