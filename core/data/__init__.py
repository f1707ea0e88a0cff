"""Datasets and readers: the built-in offline sets and the file formats labs have.

Everything returns a :class:`Dataset` of frozen examples in hashed splits; every
problem with a file is a ``DataError`` (``LabelMismatch`` for labels the model does not
know) naming the file and line.
"""

from kiln_lab.core.data.bio import read_bio
from kiln_lab.core.data.builtin import builtin_datasets, describe_builtin, load_builtin
from kiln_lab.core.data.formats import read_file
from kiln_lab.core.data.tsv import read_tsv
from kiln_lab.core.data.types import (
    Dataset,
    Split,
    TextExample,
    TokenExample,
    content_hash,
    normalise_width,
)
from kiln_lab.core.data.xnli import XNLI_LABELS, read_xnli

__all__ = [
    "XNLI_LABELS",
    "Dataset",
    "Split",
    "TextExample",
    "TokenExample",
    "builtin_datasets",
    "content_hash",
    "describe_builtin",
    "load_builtin",
    "normalise_width",
    "read_bio",
    "read_file",
    "read_tsv",
    "read_xnli",
]
