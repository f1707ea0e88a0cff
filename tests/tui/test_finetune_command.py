"""``kiln finetune``: its options and a tiny retrain through the command line.

Moved from ``tests/core/test_finetune.py`` with the command itself (``core/finetune.py``
became ``tui/commands/finetune.py``); the assertions are unchanged.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest


def test_cli_hook_adds_finetune_with_its_options() -> None:
    from kiln_lab.tui.commands.finetune import add_finetune_parser

    parser = argparse.ArgumentParser()
    add_finetune_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["finetune", "zh-senti-tiny", "--epochs", "2", "--max-minutes", "1.5", "--json"]
    )
    assert (args.model, args.epochs, args.max_minutes, args.json) == (
        "zh-senti-tiny",
        2,
        1.5,
        True,
    )
    assert callable(args.func)


def test_cli_trains_and_prints_the_report_as_json(
    kiln_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from kiln_lab.tui.commands.finetune import add_finetune_parser

    parser = argparse.ArgumentParser()
    add_finetune_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "finetune",
            "zh-senti-tiny",
            "--out",
            str(tmp_path / "model"),
            "--cards-dir",
            str(tmp_path / "cards"),
            "--epochs",
            "1",
            "--limit-train",
            "64",
            "--limit-eval",
            "64",
            "--threads",
            "1",
            "--json",
        ]
    )
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["steps"] == 2 and report["test"]["examples"] == 64
    assert report["command"][:3] == ["kiln", "finetune", "zh-senti-tiny"]
    assert (tmp_path / "cards" / "zh-senti-tiny.yaml").is_file()
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["model_type"] == "roberta" and config["type_vocab_size"] == 1
    assert config["pad_token_id"] == 0  # the tokenizer's [PAD]: RoBERTa positions start after it
