"""Classification TSV files as labs have them: SST-2 (GLUE), ChnSentiCorp, home-made.

Accepted forms:

- with a header naming the columns (detected when every cell of the first row is a
  known column name): a label column (``label``, ``labels``, ``gold_label``, ``class``,
  ``sentiment``), a text column (``text``, ``text_a``, ``sentence``, ``sentence1``,
  ``review``, ``content``, ``comment``), optionally a second text (``text_b``,
  ``sentence2``) which makes it a sentence-pair file, and ignored id columns (``qid``,
  ``id``, ``idx``, ``index``). So GLUE SST-2 ``sentence<TAB>label``, ChnSentiCorp train
  ``label<TAB>text_a`` and its dev/test ``qid<TAB>label<TAB>text_a`` all read as is.
- without a header: exactly two columns, label and text in either order. The label
  column is the one whose cells are all labels (names in ``labels``, or ids); without
  ``labels``, the one holding small integers, else the one with few short distinct
  values. If that cannot be told, the error asks for a header line.

Fields are split on tabs only (no CSV quoting: review text contains quote marks).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from kiln_lab.core.data.labels import LabelMap
from kiln_lab.core.data.textio import read_lines, short
from kiln_lab.core.data.types import (
    SENTENCE_PAIR_CLASSIFICATION,
    SEQUENCE_CLASSIFICATION,
    Dataset,
    TextExample,
    make_split,
)
from kiln_lab.core.errors import DataError

log = logging.getLogger(__name__)

LABEL_COLUMNS = ("label", "labels", "gold_label", "class", "sentiment")
TEXT_COLUMNS = ("text", "text_a", "sentence", "sentence1", "review", "content", "comment")
PAIR_COLUMNS = ("text_b", "sentence2")
ID_COLUMNS = ("qid", "id", "idx", "index")
KNOWN_COLUMNS = frozenset(LABEL_COLUMNS + TEXT_COLUMNS + PAIR_COLUMNS + ID_COLUMNS)


def numbered_rows(lines: list[str], start: int) -> list[tuple[int, list[str]]]:
    """Non-blank lines from index ``start`` as (1-based line number, tab-split cells)."""
    return [
        (i + 1, line.split("\t")) for i, line in enumerate(lines) if i >= start and line.strip()
    ]


def first_row(lines: list[str]) -> tuple[int, list[str]] | None:
    """The first non-blank line's index and lower-cased, stripped cells."""
    for i, line in enumerate(lines):
        if line.strip():
            return i, [cell.strip().lower() for cell in line.split("\t")]
    return None


def pick(header: list[str], names: Sequence[str]) -> int | None:
    """Index of the first of ``names`` present in ``header`` (names in priority order)."""
    for name in names:
        if name in header:
            return header.index(name)
    return None


def require_cells(cells: list[str], width: int, what: str, path: Path, lineno: int) -> None:
    """A row must have exactly the header's (or the form's) number of cells."""
    if len(cells) != width:
        raise DataError(
            f"expected {width} tab-separated columns ({what}), found {len(cells)}: "
            f"{short(chr(9).join(cells))}",
            path=path,
            line=lineno,
            hint="separate columns with one tab; text must not contain tabs",
        )


def empty_error(path: Path) -> DataError:
    return DataError(
        f"empty dataset: no examples in {path.name}",
        path=path,
        hint="expected one example per line, columns separated by tabs",
    )


def _guess_label_column(rows: list[tuple[int, list[str]]], mapper: LabelMap, path: Path) -> int:
    """Which of two headerless columns holds the label (see the module docstring)."""
    scores = [sum(mapper.valid(cells[c].strip()) for _, cells in rows) for c in (0, 1)]
    if scores[0] != scores[1]:
        return 0 if scores[0] > scores[1] else 1
    distinct = [{cells[c].strip() for _, cells in rows} for c in (0, 1)]
    shortish = [all(len(v) <= 20 and " " not in v for v in values) for values in distinct]
    for c in (0, 1):
        other = 1 - c
        if shortish[c] and len(distinct[c]) <= 10 and len(distinct[c]) < len(distinct[other]):
            return c
    raise DataError(
        "cannot tell which of the two columns is the label",
        path=path,
        line=rows[0][0],
        hint="add a header line naming the columns, e.g. `label<TAB>text` or `sentence<TAB>label`",
    )


def read_tsv(path: str | Path, labels: Sequence[str] | None = None) -> Dataset:
    """Read a classification TSV (forms in the module docstring) into split ``file``.

    ``labels`` are the model's label names: cells may be those names or ids into them.
    Without ``labels`` the dataset's labels are the sorted set of values found.
    """
    path = Path(path)
    lines = read_lines(path)
    head = first_row(lines)
    if head is None:
        raise empty_error(path)
    mapper = LabelMap(labels)
    start, header = head
    pair_col: int | None = None
    has_header = all(cell in KNOWN_COLUMNS for cell in header)
    if has_header:
        label_col, text_col = pick(header, LABEL_COLUMNS), pick(header, TEXT_COLUMNS)
        pair_col = pick(header, PAIR_COLUMNS)
        if label_col is None or text_col is None:
            missing = "label" if label_col is None else "text"
            raise DataError(
                f"header {header} has no {missing} column",
                path=path,
                line=start + 1,
                hint="name a label column (label) and a text column (text, text_a or "
                "sentence); GLUE/CLUE test files carry no labels and cannot be evaluated",
            )
        rows = numbered_rows(lines, start + 1)
        width, what = len(header), "as many as the header"
    else:
        rows = numbered_rows(lines, start)
        width, what = 2, "label and text"
        for lineno, cells in rows:
            require_cells(cells, width, what, path, lineno)
        if not rows:
            raise empty_error(path)
        label_col = _guess_label_column(rows, mapper, path)
        text_col = 1 - label_col
    examples: list[TextExample] = []
    for lineno, cells in rows:
        require_cells(cells, width, what, path, lineno)
        text = cells[text_col].strip()
        if not text:
            raise DataError("empty text", path=path, line=lineno, hint="remove the line")
        pair = cells[pair_col].strip() if pair_col is not None else None
        raw_label = cells[label_col].strip()
        if not raw_label:
            raise DataError("empty label", path=path, line=lineno, hint="label every line")
        label = mapper.name(raw_label, path, lineno)
        examples.append(TextExample(text=text, label=label, text_pair=pair))
    if not examples:
        raise empty_error(path)
    return Dataset(
        name=path.name,
        task=SENTENCE_PAIR_CLASSIFICATION if pair_col is not None else SEQUENCE_CLASSIFICATION,
        labels=mapper.final_labels(e.label for e in examples),
        splits={"file": make_split("file", examples)},
        source=str(path),
        stats={"examples": len(examples), "header": has_header},
    )
