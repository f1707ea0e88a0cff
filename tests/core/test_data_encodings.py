"""Every line ending and byte-order mark a lab file arrives with is read, or named.

A CR-only BIO file used to read as one sentence and score F1 0.0 without a warning; a
UTF-16 file with a BOM was told to convert from GBK. Each reader (BIO, TSV, XNLI) is
checked on the same text written every way, which must read identically.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from pathlib import Path

import pytest

from kiln_lab.core.data import read_bio, read_tsv, read_xnli
from kiln_lab.core.data.textio import read_lines
from kiln_lab.core.data.types import Dataset
from kiln_lab.core.errors import DataError

BIO = "中 B-LOC\n国 I-LOC\n人 O\n\n张 B-PER\n三 I-PER\n说 O\n"
TSV = "label\ttext\n1\t很好吃\n0\t太难吃了\n1\t还会再来\n"
XNLI = "premise\thypothesis\tlabel\n他来了\t他到了\tentailment\n天晴\t下雨\tcontradiction\n"

ENDINGS: dict[str, Callable[[str], str]] = {
    "lf": lambda text: text,
    "crlf": lambda text: text.replace("\n", "\r\n"),
    "cr": lambda text: text.replace("\n", "\r"),
    "mixed": lambda text: "".join(
        line + ("\r\n", "\r", "\n")[i % 3] for i, line in enumerate(text.split("\n")[:-1])
    ),
    "cr, no final end": lambda text: text.replace("\n", "\r").rstrip("\r"),
}
ENCODINGS = {
    "utf-8": lambda text: text.encode("utf-8"),
    "utf-8 bom": lambda text: codecs.BOM_UTF8 + text.encode("utf-8"),
    "utf-16 (le bom)": lambda text: text.encode("utf-16"),
    "utf-16-be bom": lambda text: codecs.BOM_UTF16_BE + text.encode("utf-16-be"),
    "utf-32 bom": lambda text: text.encode("utf-32"),
}
READERS: dict[str, tuple[Callable[[Path], Dataset], str]] = {
    "bio": (read_bio, BIO),
    "tsv": (read_tsv, TSV),
    "xnli": (read_xnli, XNLI),
}


def _examples(dataset: Dataset) -> list[object]:
    return list(dataset.split("file").examples)


@pytest.mark.parametrize("ending", ENDINGS)
@pytest.mark.parametrize("reader", READERS)
def test_every_line_ending_reads_the_same(tmp_path: Path, reader: str, ending: str) -> None:
    read, text = READERS[reader]
    expected = read(_write(tmp_path / f"lf.{reader}", text.encode()))
    got = read(_write(tmp_path / f"x.{reader}", ENDINGS[ending](text).encode()))
    assert _examples(got) == _examples(expected)
    assert got.stats == expected.stats


def test_a_cr_only_bio_file_is_two_sentences_not_one(tmp_path: Path) -> None:
    """The case from the issue: CR-only line ends, two sentences, six characters."""
    dataset = read_bio(_write(tmp_path / "cr.bio", ENDINGS["cr"](BIO).encode()))
    assert dataset.stats == {"sentences": 2, "tokens": 6}


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("reader", READERS)
def test_a_byte_order_mark_names_the_encoding(tmp_path: Path, reader: str, encoding: str) -> None:
    read, text = READERS[reader]
    expected = read(_write(tmp_path / f"plain.{reader}", text.encode()))
    got = read(_write(tmp_path / f"bom.{reader}", ENCODINGS[encoding](ENDINGS["crlf"](text))))
    assert _examples(got) == _examples(expected)


def test_damaged_utf16_gets_a_utf16_hint_not_gbk(tmp_path: Path) -> None:
    damaged = "中 O\n".encode("utf-16") + b"\x00\xd8" + "国 O\n".encode("utf-16-le")
    with pytest.raises(DataError) as info:
        read_lines(_write(tmp_path / "u16.bio", damaged))
    assert "iconv -f UTF-16LE" in (info.value.hint or "")
    assert "GBK" not in (info.value.hint or "")


def test_utf16_without_a_bom_is_named_by_its_nul_bytes(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        read_lines(_write(tmp_path / "u16.tsv", "1\t很好\n".encode("utf-16-le")))
    assert "iconv -f UTF-16" in (info.value.hint or "")


def test_gbk_keeps_its_hint_and_counts_cr_lines(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        read_lines(_write(tmp_path / "gbk.tsv", b"1\tok\r0\t" + "很好".encode("gbk")))
    assert info.value.line == 2
    assert "iconv -f GBK" in (info.value.hint or "")


def test_unicode_line_separators_stay_inside_a_line(tmp_path: Path) -> None:
    """U+2028 and U+0085 occur in real text; only CR and LF end a line."""
    text = "a\u2028b\tc\u0085d\r\ne\n"
    assert read_lines(_write(tmp_path / "u.tsv", text.encode())) == ["a\u2028b\tc\u0085d", "e"]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
