"""Choosing a reader by format name, as the CLI's ``--format`` and run configs give it."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from pathlib import Path

from kiln_lab.core.data.bio import read_bio
from kiln_lab.core.data.tsv import read_tsv
from kiln_lab.core.data.types import Dataset
from kiln_lab.core.data.xnli import read_xnli
from kiln_lab.core.errors import DataError

READERS: dict[str, Callable[..., Dataset]] = {
    "bio": read_bio,
    "tsv": read_tsv,
    "xnli": read_xnli,
}


def read_file(path: str | Path, fmt: str, labels: Sequence[str] | None = None) -> Dataset:
    """Read ``path`` in format ``fmt`` (``bio``, ``tsv`` or ``xnli``) into split ``file``.

    ``labels`` are the model's labels: every label in the file must be one of them.
    """
    reader = READERS.get(fmt)
    if reader is None:
        close = difflib.get_close_matches(fmt or "", list(READERS), n=1)
        raise DataError(
            f"unknown data format {fmt!r} (known: {', '.join(READERS)})",
            path=path,
            hint=f"did you mean '{close[0]}'?" if close else f"use one of: {', '.join(READERS)}",
        )
    return reader(path, labels)
