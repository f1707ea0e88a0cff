"""The precision / recall / F1 / support record shared by NER and classification scores.

One small frozen type, so a pane or a report can render an entity type and a sentiment
class with the same code.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EntityScore:
    """Precision, recall and F1 for one entity type or class (or their micro average).

    ``support`` is the number of *true* items (entities or samples), as in seqeval and
    sklearn reports; a type that was only ever predicted has support 0.
    """

    precision: float
    recall: float
    f1: float
    support: int

    def to_dict(self) -> dict[str, float | int]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "support": self.support,
        }


ClassScore = EntityScore
"""The same record, named for classification results."""


def divide(numerator: int, denominator: int) -> float:
    """``numerator / denominator``, or 0.0 when the denominator is 0.

    Both seqeval and sklearn set an undefined precision or recall to 0.0 by default
    (with a warning); Kiln reports the same figure and does not warn.
    """
    return numerator / denominator if denominator else 0.0
