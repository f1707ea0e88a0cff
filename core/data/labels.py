"""Mapping label cells (names or integer ids) onto a model's label names.

Lab files write labels either as names (``pos``, ``entailment``) or as the model's
class ids (``0``/``1``). Both are accepted; anything else is a ``LabelMismatch`` that
names the value, the line and the labels the model knows, because evaluating against
a silently wrong label map produces a plausible-looking, meaningless accuracy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from kiln_lab.core.data.textio import short
from kiln_lab.core.errors import LabelMismatch

_SHORT_INT = re.compile(r"^-?\d{1,3}$")


def is_short_int(value: str) -> bool:
    """``0``, ``1``, ``-1``, ``12``: the way class ids are written in TSV files."""
    return bool(_SHORT_INT.match(value))


class LabelMap:
    """Turns a label cell into a label name, against a fixed label list if there is one."""

    def __init__(
        self, labels: Sequence[str] | None, aliases: Mapping[str, str] | None = None
    ) -> None:
        self.labels = tuple(labels) if labels is not None else None
        self.aliases = dict(aliases or {})

    def valid(self, value: str) -> bool:
        """Whether ``value`` would map without error (used to find the label column)."""
        if self.labels is None:
            return is_short_int(value)
        value = self.aliases.get(value, value)
        return value in self.labels or (is_short_int(value) and 0 <= int(value) < len(self.labels))

    def name(self, value: str, path: Path, line: int) -> str:
        """The label name for ``value``; ids index the label list."""
        if self.labels is None:
            return value
        if value in self.labels:
            return value
        alias = self.aliases.get(value)
        if alias is not None and alias in self.labels:
            return alias
        if is_short_int(value) and 0 <= int(value) < len(self.labels):
            return self.labels[int(value)]
        raise LabelMismatch(
            f"unknown label {short(value)}; the model's labels are {list(self.labels)} "
            f"(ids 0-{len(self.labels) - 1})",
            path=path,
            line=line,
            hint="use a model whose labels match the file, or write the labels as these "
            "names or ids",
        )

    def final_labels(self, found: Iterable[str]) -> tuple[str, ...]:
        """The dataset's label list: the given one, else the sorted set found.

        Integer labels sort numerically (``2`` before ``10``) and stay strings.
        """
        if self.labels is not None:
            return self.labels
        values = set(found)
        if all(is_short_int(v) for v in values):
            return tuple(sorted(values, key=int))
        return tuple(sorted(values))
