"""What a data file holds, read from its content: format, task, labels and size.

Two callers need it before any label is mapped: the app's file picker, which shows the
format it found (so an operator need not know the words bio/tsv/xnli), and the task
check, which must come before the label check. Without it, an XNLI file given to a
sentiment model failed on "unknown label 'contradiction' ... write the labels as these
names or ids", advice that cannot work, instead of saying that sentence pairs are not
single texts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from kiln_lab.core.data.formats import read_file
from kiln_lab.core.data.textio import read_lines
from kiln_lab.core.data.tsv import KNOWN_COLUMNS, PAIR_COLUMNS, first_row
from kiln_lab.core.data.types import (
    SENTENCE_PAIR_CLASSIFICATION,
    SEQUENCE_CLASSIFICATION,
    TOKEN_CLASSIFICATION,
)
from kiln_lab.core.errors import DataError, TaskMismatch

SAMPLE_LINES = 400
"""Non-blank lines looked at to tell the format (the whole file is read for the counts)."""
_BIO_TAG = re.compile(r"^(?:O|[BIESMLU]-\S+)$")

TASK_DATA = {
    TOKEN_CLASSIFICATION: "tagged characters",
    SEQUENCE_CLASSIFICATION: "single texts",
    SENTENCE_PAIR_CLASSIFICATION: "sentence pairs",
}
"""What a file of each task holds, in the operator's words."""
TASK_MODEL = {
    TOKEN_CLASSIFICATION: "a token tagger (NER)",
    SEQUENCE_CLASSIFICATION: "a single-text classifier",
    SENTENCE_PAIR_CLASSIFICATION: "a sentence-pair classifier",
}
"""What a model of each task is, in the operator's words."""
FORMAT_NAMES = {"bio": "BIO", "tsv": "TSV", "xnli": "XNLI-style"}


@dataclass(frozen=True)
class FileKind:
    """A data file as detected: ``format`` and ``task`` are None when they cannot be told."""

    path: str
    format: str | None
    task: str | None
    labels: tuple[str, ...] = ()
    examples: int | None = None
    problem: str = ""
    """Why the file cannot be read as detected (empty when it reads cleanly)."""

    @property
    def holds(self) -> str:
        """``sentence pairs (XNLI-style, 3 labels)``: what the file holds, for messages."""
        if self.task is None:
            return "data in no format Kiln reads (bio, tsv or xnli)"
        what = TASK_DATA[self.task]
        details = [FORMAT_NAMES.get(self.format or "", self.format or "")]
        if self.task == TOKEN_CLASSIFICATION and self.labels:
            kinds = sorted({label[2:] for label in self.labels if label != "O"})
            details.append(f"{len(kinds)} entity type{'s' if len(kinds) != 1 else ''}")
        elif self.labels:
            details.append(f"{len(self.labels)} label{'s' if len(self.labels) != 1 else ''}")
        return f"{what} ({', '.join(d for d in details if d)})"

    @property
    def summary(self) -> str:
        """One line for the file picker: format, task, size, or what is wrong."""
        if self.format is None:
            return self.problem or "format not recognised"
        text = f"{self.format} · {self.holds}"
        if self.examples is not None:
            text += f" · {self.examples:,} examples"
        if self.problem:
            text += f" · cannot be read: {self.problem}"
        return text


def guess_format(lines: list[str]) -> tuple[str | None, str | None]:
    """(format, task) from the first lines' shape, before any reader runs."""
    sample = [line for line in lines if line.strip()][:SAMPLE_LINES]
    if not sample:
        return None, None
    fields = [line.split() for line in sample]
    tagged = sum(1 for f in fields if 2 <= len(f) <= 4 and _BIO_TAG.match(f[-1]))
    has_blank = any(not line.strip() for line in lines[: SAMPLE_LINES * 2])
    if tagged >= 0.9 * len(sample) and (has_blank or len(sample) < SAMPLE_LINES):
        return "bio", TOKEN_CLASSIFICATION
    head = first_row(lines)
    if head is None or "\t" not in sample[0]:
        return None, None
    header = set(head[1])
    if header & {"sentence1", "premise"} and header & {"sentence2", "hypothesis"}:
        return "xnli", SENTENCE_PAIR_CLASSIFICATION  # the XNLI reader picks columns by name
    if header <= KNOWN_COLUMNS:
        if header & set(PAIR_COLUMNS):
            return "tsv", SENTENCE_PAIR_CLASSIFICATION
        return "tsv", SEQUENCE_CLASSIFICATION
    width = len(sample[0].split("\t"))
    if width == 2:
        return "tsv", SEQUENCE_CLASSIFICATION
    if width in (3, 4):
        return "xnli", SENTENCE_PAIR_CLASSIFICATION
    return None, None


def detect(path: str | Path) -> FileKind:
    """Read ``path`` and say what it holds; never raises for content (``problem`` says).

    An unreadable path (missing, a directory, undecodable) is still a ``DataError``.
    """
    path = Path(path)
    fmt, task = guess_format(read_lines(path))
    if fmt is None:
        return FileKind(
            str(path),
            None,
            None,
            problem="not BIO (character and tag per line) nor tab-separated columns",
        )
    try:
        dataset = read_file(path, fmt)
    except DataError as exc:
        return FileKind(str(path), fmt, task, problem=exc.one_line())
    return FileKind(
        str(path), fmt, dataset.task, dataset.labels, len(dataset.split("file")), problem=""
    )


def check_task(path: str | Path, model: str, model_task: str) -> FileKind | None:
    """Refuse a file whose task is not the model's, naming both; before any label check.

    Returns what was detected (None when the shape cannot be told: the reader's own
    error then says what is wrong with the file).
    """
    path = Path(path)
    _, task = guess_format(read_lines(path))
    if task is None or task == model_task:
        return None
    kind = detect(path)
    file_task = kind.task or task
    raise TaskMismatch(
        f"this file holds {kind.holds} but {model} is {TASK_MODEL.get(model_task, model_task)}",
        path=path,
        hint=f"evaluate it with {TASK_MODEL.get(file_task, file_task)}, or give {model} a "
        f"file of {TASK_DATA.get(model_task, model_task)}",
    )
