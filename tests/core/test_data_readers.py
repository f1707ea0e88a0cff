"""File readers: the formats labs have, and a clear DataError for every bad file."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiln_lab.core.data import (
    XNLI_LABELS,
    Dataset,
    TokenExample,
    read_bio,
    read_file,
    read_tsv,
    read_xnli,
)
from kiln_lab.core.errors import DataError, KilnError, LabelMismatch

DATA = Path(__file__).resolve().parent.parent / "data" / "datasets"
CARD_NER = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def error(reader, path: Path, *args) -> DataError:
    with pytest.raises(DataError) as info:
        reader(path, *args)
    return info.value


# --- BIO -------------------------------------------------------------------------------


def test_bio_fixture() -> None:
    path = DATA / "peoples_daily_sample.bio"
    dataset = read_bio(path)
    assert dataset.task == "token-classification"
    assert dataset.labels == ("O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER")
    assert list(dataset.splits) == ["file"] and dataset.source == str(path)
    examples = dataset.split("file").examples
    assert len(examples) == 11
    second = examples[1]
    assert isinstance(second, TokenExample)
    i = second.text.index("江泽民")
    assert second.tags[i : i + 3] == ("B-PER", "I-PER", "I-PER")
    assert read_bio(path, CARD_NER).labels == tuple(CARD_NER)
    assert read_bio(path).split("file").content_hash == dataset.split("file").content_hash


def test_bio_variants_tabs_crlf_bom_columns(tmp_path: Path) -> None:
    plain = read_bio(write(tmp_path, "a.bio", "中 B-ORG\n共 I-ORG\n好 O\n\n北 B-LOC\n"))
    variant = write(
        tmp_path,
        "b.bio",
        "\ufeff中\tB-ORG\r\n共\tx\tI-ORG\r\n好 NN O\r\n\r\n\r\n北 B-LOC\r\n\r\n\r\n",
    )
    got = read_bio(variant)
    assert [e.tokens for e in got.split("file").examples] == [("中", "共", "好"), ("北",)]
    assert got.split("file").content_hash == plain.split("file").content_hash


def test_bio_malformed_line_names_file_and_line() -> None:
    path = DATA / "bad" / "malformed.bio"
    err = error(read_bio, path)
    assert err.line == 3 and err.path == str(path)
    assert "malformed.bio:3" in str(err)
    assert "found 3 fields" in err.message and "'extra'" in err.message


def test_bio_single_field(tmp_path: Path) -> None:
    err = error(read_bio, write(tmp_path, "one.bio", "中 O\n国\n"))
    assert err.line == 2 and "found 1 field" in err.message and '"<char> <TAG>"' in err.message


def test_bio_rejects_bioes() -> None:
    err = error(read_bio, DATA / "bad" / "bioes.bio")
    assert err.line == 2 and "only BIO" in err.message
    assert "S-X -> B-X" in (err.hint or "")


def test_bio_empty(tmp_path: Path) -> None:
    assert "empty dataset" in error(read_bio, DATA / "bad" / "empty.bio").message
    assert "empty dataset" in error(read_bio, write(tmp_path, "zero.bio", "")).message


def test_bio_unknown_label_against_model(tmp_path: Path) -> None:
    path = write(tmp_path, "misc.bio", "中 O\n欧 B-MISC\n")
    with pytest.raises(LabelMismatch) as info:
        read_bio(path, CARD_NER)
    assert info.value.line == 2 and "B-MISC" in info.value.message


def test_missing_file_and_non_utf8(tmp_path: Path) -> None:
    err = error(read_bio, tmp_path / "nope.bio")
    assert "nope.bio" in err.message and "check the path" in (err.hint or "")
    gbk = DATA / "bad" / "gbk.tsv"
    err = error(read_tsv, gbk)
    assert err.line == 2 and "not UTF-8" in err.message and "iconv" in (err.hint or "")


# --- classification TSV ------------------------------------------------------------------


def test_sst2_header_sentence_label() -> None:
    path = DATA / "sst2_sample.tsv"
    dataset = read_tsv(path, ["negative", "positive"])
    examples = dataset.split("file").examples
    assert dataset.task == "sequence-classification" and len(examples) == 8
    assert examples[0].text == "hide new secretions from the parental units"
    assert examples[0].label == "negative" and examples[2].label == "positive"
    assert read_tsv(path).labels == ("0", "1")


def test_chnsenticorp_train_and_test_layouts() -> None:
    train = read_tsv(DATA / "chnsenticorp_sample.tsv", ["neg", "pos"])
    assert train.labels == ("neg", "pos") and len(train.split("file")) == 6
    assert train.split("file").examples[0].label == "pos"
    test = read_tsv(DATA / "chnsenticorp_test_sample.tsv", ["neg", "pos"])
    first = test.split("file").examples[0]
    assert first.label == "pos" and first.text.startswith("这个宾馆")


def test_headerless_either_order(tmp_path: Path) -> None:
    a = read_tsv(write(tmp_path, "a.tsv", "1\t好极了\n0\t太差\n"), ["neg", "pos"])
    b = read_tsv(write(tmp_path, "b.tsv", "好极了\tpos\n太差\tneg\n"), ["neg", "pos"])
    assert a.split("file").content_hash == b.split("file").content_hash
    named = read_tsv(write(tmp_path, "c.tsv", "pos\t好极了\nneg\t太差\npos\t不错\n"))
    assert named.labels == ("neg", "pos") and named.split("file").examples[2].text == "不错"
    ids = read_tsv(write(tmp_path, "d.tsv", "很好\t10\n一般\t2\n"))
    assert ids.labels == ("2", "10")


def test_tsv_pair_columns(tmp_path: Path) -> None:
    dataset = read_tsv(write(tmp_path, "p.tsv", "text_a\ttext_b\tlabel\n甲\t乙\t1\n"))
    assert dataset.task == "sentence-pair-classification"
    assert dataset.split("file").examples[0].text_pair == "乙"


def test_tsv_errors(tmp_path: Path) -> None:
    err = error(read_tsv, DATA / "bad" / "unknown_label.tsv", ["neg", "pos"])
    assert isinstance(err, LabelMismatch) and err.line == 3
    assert "'2'" in err.message and "['neg', 'pos']" in err.message
    err = error(read_tsv, write(tmp_path, "cols.tsv", "1\t好\n0\t差\textra\n"))
    assert err.line == 2 and "found 3" in err.message
    err = error(read_tsv, write(tmp_path, "glue_test.tsv", "index\tsentence\n0\tfine\n"))
    assert "no label column" in err.message
    err = error(read_tsv, write(tmp_path, "amb.tsv", "好\t不错\n差\t坏\n"))
    assert "cannot tell" in err.message and "header" in (err.hint or "")
    assert "empty dataset" in error(read_tsv, write(tmp_path, "e.tsv", "\n\n")).message
    assert "empty dataset" in error(read_tsv, write(tmp_path, "h.tsv", "label\ttext\n")).message
    assert error(read_tsv, write(tmp_path, "t.tsv", "label\ttext\n1\t \n")).line == 2


# --- XNLI ----------------------------------------------------------------------------------


def test_xnli_real_layout() -> None:
    dataset = read_xnli(DATA / "xnli_dev_sample.tsv")
    assert dataset.task == "sentence-pair-classification" and dataset.labels == XNLI_LABELS
    examples = dataset.split("file").examples
    assert len(examples) == 6
    assert examples[0].text == "And he said, Mama, I'm home."
    assert examples[0].text_pair == "He didn't say a word." and examples[0].label == "contradiction"
    assert [e.language for e in examples][:3] == ["en", "en", "zh"]
    assert dataset.stats["languages"] == ["de", "en", "fr", "zh"]


def test_xnli_headerless_forms(tmp_path: Path) -> None:
    simple = read_xnli(DATA / "xnli_zh_simple.tsv")
    assert [e.label for e in simple.split("file").examples] == [
        "contradiction",
        "entailment",
        "neutral",
    ]
    four = read_xnli(write(tmp_path, "x.tsv", "前提\t假设\t0\tzh\n前提\t假设\t2\tzh\n"))
    assert [(e.label, e.language) for e in four.split("file").examples] == [
        ("entailment", "zh"),
        ("contradiction", "zh"),
    ]
    model = ["contradiction", "entailment", "neutral"]
    mapped = read_xnli(write(tmp_path, "y.tsv", "p\th\t0\n"), model)
    assert mapped.split("file").examples[0].label == "contradiction" and mapped.labels == tuple(
        model
    )


def test_xnli_errors(tmp_path: Path) -> None:
    err = error(read_xnli, write(tmp_path, "bad.tsv", "p\th\tentailment\np\th\tmaybe\n"))
    assert isinstance(err, LabelMismatch) and err.line == 2 and "'maybe'" in err.message
    err = error(read_xnli, write(tmp_path, "w.tsv", "p\th\n"))
    assert "found 2 columns" in err.message
    err = error(read_xnli, write(tmp_path, "r.tsv", "p\th\tneutral\np\th\n"))
    assert err.line == 2


# --- dispatch and robustness ----------------------------------------------------------------


def test_read_file_dispatch() -> None:
    assert read_file(DATA / "peoples_daily_sample.bio", "bio").task == "token-classification"
    assert read_file(DATA / "xnli_zh_simple.tsv", "xnli", list(XNLI_LABELS)).labels == XNLI_LABELS
    with pytest.raises(DataError) as info:
        read_file(DATA / "sst2_sample.tsv", "csv")
    assert "bio, tsv, xnli" in info.value.message and "tsv" in (info.value.hint or "")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    content=st.lists(
        st.sampled_from(["中 O", "B-PER", "\t", " ", "1", "pos", "中\tB-X", "E-X", "\r", "好\t"]),
        max_size=12,
    ).map("\n".join)
    | st.binary(max_size=40),
    reader=st.sampled_from([read_bio, read_tsv, read_xnli]),
)
def test_bad_content_only_raises_data_errors(tmp_path: Path, content, reader) -> None:
    path = write(tmp_path, "fuzz.txt", content)
    try:
        assert isinstance(reader(path), Dataset)
    except KilnError as exc:
        assert isinstance(exc, DataError)
