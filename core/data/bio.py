"""Character-per-line BIO files, the format of the public People's Daily NER sets.

    中 B-ORG
    共 I-ORG
    ...
    (blank line between sentences)

Columns are separated by spaces or tabs; files with more columns (CoNLL style) are
accepted and the tag is taken from the LAST column. Only BIO tags are accepted: a
model trained on BIO would silently score BIOES ``E-``/``S-`` tags as wrong, so they are
refused with a recipe to convert them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from kiln_lab.core.data.textio import read_lines, short
from kiln_lab.core.data.types import (
    TOKEN_CLASSIFICATION,
    Dataset,
    TokenExample,
    make_split,
    shared_tokens,
)
from kiln_lab.core.errors import DataError, LabelMismatch

log = logging.getLogger(__name__)

_TAG = re.compile(r"^(?:O|[BI]-[^\s-][^\s]*)$")
_BIOES = re.compile(r"^[ESMLU]-\S+$")
_EXPECTED = 'expected "<char> <TAG>" (tag in the last column, e.g. "中 B-ORG")'


def bio_label_order(tags: Iterable[str]) -> tuple[str, ...]:
    """``O`` first, then ``B-X``, ``I-X`` for each entity type X in sorted order.

    Every type found gets both its B- and I- tag, because a model for the type predicts
    both even where a file happens to hold only one-character entities.
    """
    types = sorted({tag[2:] for tag in tags if tag != "O"})
    ordered = ["O"]
    for kind in types:
        ordered += [f"B-{kind}", f"I-{kind}"]
    return tuple(ordered)


def _check_tag(tag: str, fields: list[str], path: Path, lineno: int) -> None:
    if _TAG.match(tag):
        return
    if _BIOES.match(tag):
        raise DataError(
            f"tag {tag!r} is BIOES/BILOU; only BIO tags are supported",
            path=path,
            line=lineno,
            hint="convert to BIO: S-X -> B-X, E-X/M-X -> I-X (keep B-X, I-X, O)",
        )
    raise DataError(
        f"{_EXPECTED}, found {len(fields)} field{'s' if len(fields) != 1 else ''}: "
        f"{short(' '.join(fields))}; {tag!r} is not a BIO tag (O, B-TYPE or I-TYPE)",
        path=path,
        line=lineno,
        hint="each line holds one character and its tag; sentences are separated by a blank line",
    )


def read_bio(path: str | Path, labels: Sequence[str] | None = None) -> Dataset:
    """Read a BIO file into a dataset with a single split ``file``.

    With ``labels`` (a model's tag list) every tag must be one of them, else
    ``LabelMismatch`` names the line; the dataset then reports the model's labels.
    Without, the labels are the tags found, ordered as in :func:`bio_label_order`.
    Whitespace characters written as a token (a line holding only the tag, after
    leading whitespace) are skipped when tagged ``O``: tokenizers drop them anyway.
    """
    path = Path(path)
    lines = read_lines(path)
    allowed = set(labels) if labels is not None else None
    examples: list[TokenExample] = []
    tokens: list[str] = []
    tags: list[str] = []
    found: set[str] = set()
    skipped_spaces = 0

    def finish() -> None:
        if tokens:
            examples.append(TokenExample(shared_tokens(tokens), shared_tokens(tags)))
            tokens.clear()
            tags.clear()

    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            finish()
            continue
        fields = line.split()
        if len(fields) == 1:
            if line[:1].isspace() and fields[0] == "O":
                skipped_spaces += 1
                continue
            raise DataError(
                f"{_EXPECTED}, found 1 field: {short(line.strip())}",
                path=path,
                line=lineno,
                hint="each line holds one character and its tag separated by a space or "
                "tab; sentences are separated by a blank line",
            )
        tag = fields[-1]
        _check_tag(tag, fields, path, lineno)
        if allowed is not None and tag not in allowed:
            raise LabelMismatch(
                f"tag {tag!r} is not in the model's labels {list(labels or [])}",
                path=path,
                line=lineno,
                hint="evaluate with a model whose labels include this tag, or map the tag "
                "in the file",
            )
        found.add(tag)
        tokens.append(fields[0])
        tags.append(tag)
    finish()
    if not examples:
        raise DataError(
            f"empty dataset: no sentences in {path.name}",
            path=path,
            hint='expected lines "<char> <TAG>" with a blank line between sentences',
        )
    if skipped_spaces:
        log.info("%s: skipped %d whitespace tokens tagged O", path, skipped_spaces)
    label_list = tuple(labels) if labels is not None else bio_label_order(found)
    stats = {"sentences": len(examples), "tokens": sum(len(e.tokens) for e in examples)}
    if skipped_spaces:
        stats["skipped_whitespace_tokens"] = skipped_spaces
    return Dataset(
        name=path.name,
        task=TOKEN_CLASSIFICATION,
        labels=label_list,
        splits={"file": make_split("file", examples)},
        source=str(path),
        stats=stats,
    )
