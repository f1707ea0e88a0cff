"""XNLI-style sentence-pair TSV files (premise, hypothesis, label, language).

Accepted forms:

- a header row, columns picked by name so extra columns are ignored: the real XNLI
  1.0 dev/test TSV (``language``, ``gold_label``, ..., ``sentence1``, ``sentence2``,
  ``promptID``, ...) and the Hugging Face style ``premise``, ``hypothesis``, ``label``
  [, ``language``/``lang``].
- no header: ``premise<TAB>hypothesis<TAB>label`` (PaddleNLP's per-language files) or
  ``premise<TAB>hypothesis<TAB>label<TAB>language``; every row as wide as the first.

Labels are names or ids; without a model's ``labels`` the XNLI order used by Hugging
Face and PaddleNLP applies (entailment=0, neutral=1, contradiction=2). The MultiNLI
spelling ``contradictory`` (in XNLI's translated train files) reads as
``contradiction``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from kiln_lab.core.data.labels import LabelMap
from kiln_lab.core.data.textio import read_lines
from kiln_lab.core.data.tsv import empty_error, first_row, numbered_rows, pick, require_cells
from kiln_lab.core.data.types import SENTENCE_PAIR_CLASSIFICATION, Dataset, TextExample, make_split
from kiln_lab.core.errors import DataError

log = logging.getLogger(__name__)

XNLI_LABELS = ("entailment", "neutral", "contradiction")
_ALIASES = {"contradictory": "contradiction"}
_PREMISE = ("sentence1", "premise")
_HYPOTHESIS = ("sentence2", "hypothesis")
_LABEL = ("gold_label", "label")
_LANGUAGE = ("language", "lang")


def read_xnli(path: str | Path, labels: Sequence[str] | None = None) -> Dataset:
    """Read an XNLI-style TSV (forms in the module docstring) into split ``file``."""
    path = Path(path)
    lines = read_lines(path)
    head = first_row(lines)
    if head is None:
        raise empty_error(path)
    start, header = head
    mapper = LabelMap(labels if labels is not None else XNLI_LABELS, _ALIASES)
    premise, hypothesis = pick(header, _PREMISE), pick(header, _HYPOTHESIS)
    if premise is not None or hypothesis is not None:
        label, language = pick(header, _LABEL), pick(header, _LANGUAGE)
        if premise is None or hypothesis is None or label is None:
            raise DataError(
                f"header {header[:8]} lacks a premise, hypothesis or label column",
                path=path,
                line=start + 1,
                hint="name them sentence1, sentence2, gold_label (XNLI) or premise, "
                "hypothesis, label",
            )
        rows = numbered_rows(lines, start + 1)
        width, what = len(header), "as many as the header"
    else:
        rows = numbered_rows(lines, start)
        width = len(rows[0][1])
        if width not in (3, 4):
            raise DataError(
                f"expected premise<TAB>hypothesis<TAB>label[<TAB>language], found {width} "
                "columns and no header",
                path=path,
                line=rows[0][0],
                hint="add a header row naming the columns (premise, hypothesis, label, language)",
            )
        premise, hypothesis, label = 0, 1, 2
        language = 3 if width == 4 else None
        what = "premise, hypothesis, label" + (", language" if language else "")
    examples: list[TextExample] = []
    for lineno, cells in rows:
        require_cells(cells, width, what, path, lineno)
        first, second = cells[premise].strip(), cells[hypothesis].strip()
        if not first or not second:
            raise DataError(
                "empty premise or hypothesis", path=path, line=lineno, hint="remove the line"
            )
        examples.append(
            TextExample(
                text=first,
                text_pair=second,
                label=mapper.name(cells[label].strip(), path, lineno),
                language=cells[language].strip() or None if language is not None else None,
            )
        )
    if not examples:
        raise empty_error(path)
    languages = sorted({e.language for e in examples if e.language})
    return Dataset(
        name=path.name,
        task=SENTENCE_PAIR_CLASSIFICATION,
        labels=mapper.final_labels(()),
        splits={"file": make_split("file", examples)},
        source=str(path),
        stats={"examples": len(examples), "languages": languages},
    )
