"""A fixed part of a user's file held apart for the int8 guard and calibration.

A built-in data set has ``train`` and ``dev`` splits, so calibration and the accuracy
guard never see the examples a run reports on. A user's file has one split; scoring the
guard (or calibrating) on part of the same examples the run then reports would let the
guard grade its own homework. So Kiln holds a fixed part of the file apart for them and
reports on the rest, and says so in the log and the run record.

The part held apart is chosen by a hash of each example's content, not by position: the
same file always holds apart the same examples (a resumed or repeated run agrees), a
file sorted by label or length does not hand the guard one label or length, and
duplicates of a held example are held too, so none leaks into the reported part.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from kiln_lab.core.data.types import Split, canonical_line, make_split

HOLDOUT_FRACTION = 0.2
"""At most this share of the file is held apart (the rest is what the run reports on)."""


@dataclass(frozen=True)
class Holdout:
    """The examples held apart and the ones reported on, from one split."""

    held: Split
    reported: Split

    def describe(self) -> dict[str, object]:
        return {
            "held_apart": len(self.held),
            "reported_on": len(self.reported),
            "held_hash": self.held.content_hash,
            "why": "the file has no train/dev split: calibration and the int8 guard use a "
            "fixed part held apart, the run reports on the rest",
        }


def _rank(line: str) -> bytes:
    return hashlib.sha256(b"kiln-holdout\n" + line.encode("utf-8")).digest()


def hold_apart(split: Split, wanted: int) -> Holdout:
    """Hold apart up to ``wanted`` examples (never more than ``HOLDOUT_FRACTION``).

    Examples are ranked by a keyed hash of their canonical line; the lowest ranks are
    held, with every copy of a held example, and the reported part keeps file order.
    """
    lines = [canonical_line(e) for e in split.examples]
    cap = min(wanted, int(len(lines) * HOLDOUT_FRACTION))
    if cap < 1:
        return Holdout(make_split(f"{split.name}:held", ()), split)
    ranked = sorted(set(lines), key=_rank)
    held_lines: set[str] = set()
    count = {line: 0 for line in ranked}
    for line in lines:
        count[line] += 1
    taken = 0
    for line in ranked:
        if taken + count[line] > cap and taken:
            break
        held_lines.add(line)
        taken += count[line]
    held = [e for e, line in zip(split.examples, lines, strict=True) if line in held_lines]
    rest = [e for e, line in zip(split.examples, lines, strict=True) if line not in held_lines]
    return Holdout(make_split(f"{split.name}:held", held), make_split(split.name, rest))
