"""A data file's format and task are told from its content, and a file of another task
than the model is refused before any label is checked, naming both tasks."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln_lab.core.data.detect import check_task, detect, guess_format
from kiln_lab.core.errors import TaskMismatch
from kiln_lab.core.runconfig import RunConfig
from kiln_lab.core.stages.evaluate import truncation_note
from kiln_lab.core.stages.resolve import preflight

DATA = Path(__file__).resolve().parent.parent / "data" / "datasets"


@pytest.mark.parametrize(
    ("name", "fmt", "task", "holds"),
    [
        ("xnli_zh_simple.tsv", "xnli", "sentence-pair-classification", "sentence pairs (XNLI"),
        ("xnli_dev_sample.tsv", "xnli", "sentence-pair-classification", "3 labels"),
        ("sst2_sample.tsv", "tsv", "sequence-classification", "single texts (TSV, 2 labels)"),
        ("chnsenticorp_sample.tsv", "tsv", "sequence-classification", "single texts"),
        ("peoples_daily_sample.bio", "bio", "token-classification", "BIO, 3 entity types"),
    ],
)
def test_format_and_task_are_detected(name: str, fmt: str, task: str, holds: str) -> None:
    kind = detect(DATA / name)
    assert (kind.format, kind.task, kind.problem) == (fmt, task, "")
    assert holds in kind.holds and kind.examples and kind.examples > 0
    assert kind.summary.startswith(f"{fmt} · ")


def test_shapes_without_a_reader() -> None:
    assert guess_format(["text_a\ttext_b\tlabel", "a\tb\t1"]) == (
        "tsv",
        "sentence-pair-classification",
    )
    assert guess_format(["premise\thypothesis\tlabel"]) == ("xnli", "sentence-pair-classification")
    assert guess_format(["a\tb\tc\td\te"]) == (None, None)
    assert guess_format(["just prose, no tabs"]) == (None, None)
    assert guess_format([]) == (None, None)


def test_an_unreadable_file_says_why_without_raising(tmp_path: Path) -> None:
    path = tmp_path / "odd.tsv"
    path.write_text("label\ttext\nmaybe\t\n", encoding="utf-8")
    kind = detect(path)
    assert kind.format == "tsv" and "empty text" in kind.problem


@pytest.mark.parametrize(
    ("model", "name", "fmt", "says"),
    [
        (
            "zh-senti-tiny",
            "xnli_zh_simple.tsv",
            "xnli",
            "this file holds sentence pairs (XNLI-style, 3 labels) but zh-senti-tiny is a "
            "single-text classifier",
        ),
        (
            "zh-senti-tiny",
            "xnli_dev_sample.tsv",
            "tsv",  # the wrong format too: the task check still speaks first
            "sentence pairs (XNLI-style, 3 labels) but zh-senti-tiny is a single-text",
        ),
        (
            "zh-ner-tiny",
            "chnsenticorp_sample.tsv",
            "tsv",
            "single texts (TSV, 2 labels) but zh-ner-tiny is a token tagger (NER)",
        ),
        (
            "zh-senti-tiny",
            "peoples_daily_sample.bio",
            "bio",
            "tagged characters (BIO, 3 entity types) but zh-senti-tiny is a single-text",
        ),
    ],
)
def test_the_task_check_comes_before_the_label_check(
    model: str, name: str, fmt: str, says: str, kiln_home: Path
) -> None:
    config = RunConfig(model=model, dataset_file=str(DATA / name), dataset_format=fmt)
    with pytest.raises(TaskMismatch) as refused:
        preflight(config)
    assert says in refused.value.message
    assert "unknown label" not in refused.value.message
    assert refused.value.hint and "file of" in refused.value.hint


def test_the_same_task_passes() -> None:
    assert check_task(DATA / "sst2_sample.tsv", "zh-senti-tiny", "sequence-classification") is None


def test_truncation_speaks_of_predicted_o_only_for_taggers() -> None:
    ner = truncation_note("token-classification", 3, 100, 128)
    senti = truncation_note("sequence-classification", 3, 100, 128)
    pairs = truncation_note("sentence-pair-classification", 3, 100, 128)
    assert "predicted O" in ner and "3 of 100" in ner
    for note in (senti, pairs):
        assert "predicted O" not in note and "entity" not in note
        assert "first 128 tokens" in note
