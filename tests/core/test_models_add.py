"""Bring your own model: a ``save_pretrained`` directory made here becomes a card in
KILN_HOME with ``kiln models add``, and runs by that name or by its directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kiln_lab.core.errors import ConfigError, ParityError
from kiln_lab.core.models import get_card, list_cards
from kiln_lab.core.models.from_directory import draft_card
from kiln_lab.tui.cli import main

DATA = Path(__file__).resolve().parent.parent / "data"
NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]


def _save_tiny_bert(out: Path, head: str, labels: list[str]) -> Path:
    """A 2-layer, 32-wide BERT with a character vocabulary written here, and its tokenizer."""
    import torch
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        BertForTokenClassification,
        BertTokenizerFast,
    )

    out.mkdir(parents=True)
    chars = [chr(c) for c in range(0x4E00, 0x4E00 + 2000)]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *map(chr, range(33, 127)), *chars]
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(str(out / "vocab.txt"), do_lower_case=False, model_max_length=64)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    torch.manual_seed(0)
    model_class = BertForTokenClassification if head == "token" else BertForSequenceClassification
    model_class(config).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("byom")
    return {
        "ner": _save_tiny_bert(root / "Lab NER v2", "token", NER_LABELS),
        "senti": _save_tiny_bert(root / "lab-senti", "sequence", ["neg", "pos"]),
    }


def _kiln(*args: str, home: Path) -> subprocess.CompletedProcess:
    """The command line as an operator types it (its own process, like the worker's)."""
    env = {**os.environ, "KILN_HOME": str(home), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "kiln_lab.tui.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def _edit_config(directory: Path, tmp_path: Path, **changes: object) -> Path:
    copy = tmp_path / directory.name
    shutil.copytree(directory, copy)
    config = json.loads((copy / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (copy / "config.json").write_text(json.dumps(config))
    return copy


def test_everything_is_read_off_the_directory(saved_models: dict[str, Path]) -> None:
    ner = draft_card(saved_models["ner"])
    assert not ner.questions
    card = ner.card()
    assert (card.name, card.family, card.task) == ("lab-ner-v2", "bert", "token-classification")
    assert list(card.labels) == NER_LABELS
    assert card.max_seq_len == 64  # the tokenizer's model_max_length, under 128 positions
    assert card.default_dataset == "peoples-daily-1998"
    assert card.weights.source == "local" and Path(card.weights.path) == saved_models["ner"]
    assert card.architecture is not None and card.architecture.tokenizer == "cjk-chars"
    senti = draft_card(saved_models["senti"]).card()
    assert (senti.task, senti.labels, senti.default_dataset) == (
        "sequence-classification",
        ("neg", "pos"),
        "shopping-reviews",
    )


def test_what_the_directory_does_not_say_is_asked_for_by_flag(
    saved_models: dict[str, Path], tmp_path: Path
) -> None:
    silent = _edit_config(
        saved_models["senti"], tmp_path, architectures=None, max_position_embeddings=None
    )
    (silent / "tokenizer_config.json").unlink()
    draft = draft_card(silent)
    assert [q.flag for q in draft.questions] == ["--task", "--max-seq-len"]
    with pytest.raises(ConfigError, match="cannot tell task") as info:
        draft.card()
    assert "--task" in str(info.value.hint) and "--max-seq-len" in str(info.value.hint)
    card = draft.answered(task="sentence-pair-classification", max_seq_len=48).card()
    assert (card.task, card.max_seq_len) == ("sentence-pair-classification", 48)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"auto_map": {"AutoModel": "x.Y"}}, "its own Python code"),
        ({"model_type": "distilbert"}, "model_type is 'distilbert'"),
        ({"architectures": ["BertForMaskedLM"]}, "no classification head"),
    ],
)
def test_checkpoints_kiln_cannot_build_are_refused(
    saved_models: dict[str, Path], tmp_path: Path, changes: dict, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        draft_card(_edit_config(saved_models["ner"], tmp_path, **changes))


def test_a_task_that_contradicts_the_head_is_refused(saved_models: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="does not fit the checkpoint's head"):
        draft_card(saved_models["senti"], task="token-classification")


def test_models_add_writes_the_card_to_kiln_home_and_it_is_found_by_name(
    saved_models: dict[str, Path], kiln_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "add", str(saved_models["senti"]), "--name", "my-senti", "--json"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert Path(added["path"]) == kiln_home / "cards" / "my-senti.yaml"
    assert added["parity"]["status"] == "pass" and added["parity"]["samples"] == 8
    card = get_card("my-senti")
    assert card.task == "sequence-classification" and card.card_path == added["path"]
    assert "my-senti" in {c.name for c in list_cards()}
    # Adding it again needs --replace; a built-in's name is never taken.
    assert main(["models", "add", str(saved_models["senti"]), "--name", "my-senti"]) == 1
    assert "--replace" in capsys.readouterr().err
    assert main(["models", "add", str(saved_models["senti"]), "--name", "zh-senti-tiny"]) == 1
    assert "built-in" in capsys.readouterr().err


def test_without_a_terminal_a_missing_answer_names_its_flag(
    saved_models: dict[str, Path], kiln_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    silent = _edit_config(saved_models["ner"], tmp_path, architectures=None)
    assert main(["models", "add", str(silent), "--json"]) == 1
    error = json.loads(capsys.readouterr().out)
    assert "cannot tell task" in error["error"] and "--task" in error["hint"]
    assert not (kiln_home / "cards").exists() or not list((kiln_home / "cards").iterdir())


def test_a_broken_export_fails_the_parity_check(
    saved_models: dict[str, Path], kiln_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kiln_lab.core.models import add
    from kiln_lab.core.runtimes import onnxruntime

    real_run = onnxruntime.OnnxRuntimeModel.run

    def skewed(self: object, arrays: dict) -> object:
        logits = real_run(self, arrays)
        return -logits  # the opposite predictions: what a wrong export would give

    monkeypatch.setattr(onnxruntime.OnnxRuntimeModel, "run", skewed)
    with pytest.raises(ParityError, match="disagrees with PyTorch"):
        add.quick_parity(draft_card(saved_models["ner"]).card())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "data", "fmt"),
    [
        ("ner", "peoples_daily_sample.bio", "bio"),
        ("senti", "chnsenticorp_sample.tsv", "tsv"),
    ],
)
def test_added_model_runs_by_name_and_by_directory(
    saved_models: dict[str, Path],
    kiln_home: Path,
    capsys: pytest.CaptureFixture[str],
    kind: str,
    data: str,
    fmt: str,
) -> None:
    directory = saved_models[kind]
    assert main(["models", "add", str(directory), "--name", f"lab-{kind}", "--json"]) == 0
    capsys.readouterr()
    data_file = str(DATA / "datasets" / data)
    for model in (f"lab-{kind}", str(directory)):
        argv = ["run", "--model", model, "--dataset-file", data_file, "--format", fmt]
        proc = _kiln(*argv, "--limit", "6", "--json", home=kiln_home)
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        assert result["status"] == "succeeded" and result["parity"]["status"] == "pass"
        assert result["metrics"]["entity_f1" if kind == "ner" else "accuracy"] is not None
        assert Path(result["dataset"]).name == data or result["dataset"] == data


def test_at_a_terminal_what_the_directory_does_not_say_is_asked(
    saved_models: dict[str, Path], kiln_home: Path, tmp_path: Path
) -> None:
    silent = _edit_config(saved_models["senti"], tmp_path, architectures=None)
    terminal, its_end = os.openpty()  # stdin is a terminal: a person can be asked
    env = {**os.environ, "KILN_HOME": str(kiln_home), "NO_COLOR": "1"}
    argv = ["models", "add", str(silent), "--name", "asked", "--no-check"]
    with subprocess.Popen(
        [sys.executable, "-m", "kiln_lab.tui.cli", *argv],
        stdin=its_end,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        os.write(terminal, b"sentence-pair-classification\n")
        stdout, stderr = proc.communicate(timeout=120)
    os.close(terminal)
    os.close(its_end)
    assert proc.returncode == 0, stderr
    assert "config.json names no architecture" in stderr and "What does the model do?" in stderr
    card = get_card(str(kiln_home / "cards" / "asked.yaml"))
    assert card.task == "sentence-pair-classification"
    assert "not checked (--no-check)" in stdout


def test_model_argument_is_a_card_name_first_and_a_path_when_written_as_one(
    saved_models: dict[str, Path], kiln_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kiln_lab.tui.commands.run import _model_argument

    shutil.copytree(saved_models["ner"], tmp_path / "zh-ner-tiny")
    shutil.copytree(saved_models["senti"], tmp_path / "mine")
    monkeypatch.chdir(tmp_path)
    assert get_card("zh-ner-tiny").weights.source == "builtin"  # the folder hides no card
    assert get_card("./zh-ner-tiny").weights.source == "local"
    assert get_card("mine").weights.path == str(tmp_path / "mine")  # no card named so
    # The worker (or a resume from elsewhere) gets the directory as an absolute path.
    assert _model_argument("zh-ner-tiny") == "zh-ner-tiny"
    assert _model_argument("./zh-ner-tiny") == str(tmp_path / "zh-ner-tiny")
    assert _model_argument("mine") == str(tmp_path / "mine")
    assert _model_argument("no-such") == "no-such"


def test_values_given_by_flag_are_checked_like_a_card(saved_models: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="not a card name") as info:
        draft_card(saved_models["senti"], name="Bad Name")
    assert info.value.hint == "use --name bad-name"
    with pytest.raises(ConfigError, match="max_seq_len: Input should be greater"):
        draft_card(saved_models["senti"], max_seq_len=4).card()
    with pytest.raises(ConfigError, match="longer than the checkpoint's 128 positions"):
        draft_card(saved_models["senti"], max_seq_len=512)
