"""The shapes every data set takes, and the helpers that make them reproducible.

Examples are frozen so a split can be shared between stages (and cached in-process)
without anyone mutating it. A split carries a content hash so a run record can say
exactly which examples it evaluated, and two machines can tell whether they agree.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kiln_lab.core.errors import DataError

TOKEN_CLASSIFICATION = "token-classification"
SEQUENCE_CLASSIFICATION = "sequence-classification"
SENTENCE_PAIR_CLASSIFICATION = "sentence-pair-classification"
TASKS = (TOKEN_CLASSIFICATION, SEQUENCE_CLASSIFICATION, SENTENCE_PAIR_CLASSIFICATION)


@dataclass(frozen=True)
class TokenExample:
    """One NER sentence: a token (for Chinese: one character) and a BIO tag each."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.tokens) != len(self.tags):
            raise ValueError(f"{len(self.tokens)} tokens but {len(self.tags)} tags")

    @property
    def text(self) -> str:
        """The sentence as one string (tokens joined without spaces, as in Chinese)."""
        return "".join(self.tokens)


@dataclass(frozen=True)
class TextExample:
    """One classification example; ``text_pair`` is set for sentence-pair tasks."""

    text: str
    label: str
    text_pair: str | None = None
    language: str | None = None


Example = TokenExample | TextExample


def canonical_line(example: Example) -> str:
    """One example as one JSON line; the format is part of the hash contract.

    ``["token", tokens, tags]`` or ``["text", text, label, text_pair, language]``,
    compact separators, non-ASCII kept as UTF-8. Changing this changes every hash.
    """
    if isinstance(example, TokenExample):
        row: list[object] = ["token", list(example.tokens), list(example.tags)]
    else:
        row = ["text", example.text, example.label, example.text_pair, example.language]
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))


def content_hash(examples: Iterable[Example]) -> str:
    """sha256 (hex) of the examples' canonical serialisation, one JSON line each, in order.

    Independent of Python's hash seed, the platform and the file the examples came from,
    so equal hashes mean equal data.
    """
    digest = hashlib.sha256()
    for example in examples:
        digest.update(canonical_line(example).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


@dataclass(frozen=True)
class Split:
    """A named, ordered, hashed run of examples (``train``, ``dev``, ``test`` or ``file``)."""

    name: str
    examples: tuple[Example, ...]
    content_hash: str

    def __len__(self) -> int:
        return len(self.examples)


def make_split(name: str, examples: Iterable[Example]) -> Split:
    """Build a split and compute its content hash."""
    items = tuple(examples)
    return Split(name=name, examples=items, content_hash=content_hash(items))


@dataclass(frozen=True)
class Dataset:
    """A labelled data set: task, full label list, splits, and where it came from.

    ``stats`` holds the derivation's counts (duplicates dropped, entities per type, ...)
    so ``kiln datasets`` can show what was done to the source; it is not part of any
    hash.
    """

    name: str
    task: str
    labels: tuple[str, ...]
    splits: Mapping[str, Split]
    source: str
    stats: Mapping[str, object] = field(default_factory=dict, compare=False)

    def split(self, name: str) -> Split:
        """The split called ``name``; a ``DataError`` lists the ones there are."""
        try:
            return self.splits[name]
        except KeyError:
            known = ", ".join(self.splits) or "none"
            close = difflib.get_close_matches(name, list(self.splits), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"use one of: {known}"
            raise DataError(
                f"dataset '{self.name}' has no split '{name}' (it has: {known})", hint=hint
            ) from None


# Full-width digits and Latin letters become ASCII, the ideographic space a plain space.
# Punctuation (，。％．：) stays full-width: it is punctuation in Chinese text, the
# public People's Daily NER files keep it that way, and Chinese BERT vocabularies have
# it. This is why NFKC is not used: it would also rewrite ，to , and ％ to %.
_WIDTH_TABLE = {
    **{cp: cp - 0xFEE0 for cp in range(0xFF10, 0xFF1A)},  # ０-９
    **{cp: cp - 0xFEE0 for cp in range(0xFF21, 0xFF3B)},  # Ａ-Ｚ
    **{cp: cp - 0xFEE0 for cp in range(0xFF41, 0xFF5B)},  # ａ-ｚ
    0x3000: 0x20,  # ideographic space
}


def normalise_width(text: str) -> str:
    """Full-width digits, letters and space to half-width; everything else unchanged."""
    return text.translate(_WIDTH_TABLE)


def split_bucket(text: str) -> str:
    """``train``/``dev``/``test`` by a hash of the text: 80/10/10, stable everywhere.

    Because the bucket depends on the text alone, identical sentences always land in
    the same split, so duplicates can never leak from train into test.
    """
    value = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") % 100
    if value < 80:
        return "train"
    if value < 90:
        return "dev"
    return "test"


def shared_tokens(text: Iterable[str]) -> tuple[str, ...]:
    """Tokens as interned strings: a million CJK characters then share ~5,000 objects."""
    return tuple(map(sys.intern, text))
