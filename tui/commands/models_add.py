"""``kiln models add DIR``: an operator's own Hugging Face model, with no YAML to write.

Everything the directory says is read off it (:mod:`kiln_lab.core.models.from_directory`);
what it cannot say is asked at a terminal, or named as the missing flag when stdin is not
one (a script must never hang on a prompt). A quick parity check runs before the card
is written to ``KILN_HOME/cards``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kiln_lab.core.data.types import TASKS
from kiln_lab.tui.commands.console import err, out, print_json


def add_models_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=("list", "add"), default="list")
    p.add_argument("directory", nargs="?", metavar="DIR", help="with add: the model directory")
    p.add_argument("--name", help="with add: the card's name (default: from the directory)")
    p.add_argument("--task", choices=TASKS, help="with add: when config.json does not say")
    p.add_argument("--max-seq-len", type=int, help="with add: when the checkpoint does not say")
    p.add_argument(
        "--dataset",
        dest="default_dataset",
        help="with add: default built-in dataset (default: one of the task and labels)",
    )
    p.add_argument("--title", help="with add: a one-line title")
    p.add_argument(
        "--no-check", dest="check", action="store_false", help="with add: skip the parity check"
    )
    p.add_argument("--replace", action="store_true", help="with add: overwrite a card you added")
    p.add_argument("--json", action="store_true")


def _ask(question: Any) -> Any:
    from rich.prompt import IntPrompt, Prompt

    err.print(f"[bold]{question.reason}[/]", highlight=False)
    if question.field == "max_seq_len":
        return IntPrompt.ask(question.prompt, console=err)
    if question.choices:
        return Prompt.ask(question.prompt, choices=list(question.choices), console=err)
    return Prompt.ask(question.prompt, console=err)


def _answer_open_questions(draft: Any, *, interactive: bool) -> Any:
    """Ask what the directory did not say (at a terminal), at most once per question."""
    asked: set[str] = set()
    while draft.questions and interactive:
        question = draft.questions[0]
        if question.field in asked:
            break
        asked.add(question.field)
        draft = draft.answered(**{question.field: _ask(question)})
    return draft


def cmd_models_add(args: argparse.Namespace) -> int:
    from kiln_lab.core.errors import ConfigError
    from kiln_lab.core.models.add import quick_parity, write_user_card
    from kiln_lab.core.models.from_directory import draft_card
    from kiln_lab.core.models.loading import check_tokenizer_files

    if not args.directory:
        raise ConfigError("which directory?", hint="kiln models add DIR (a save_pretrained output)")
    draft = draft_card(
        args.directory,
        name=args.name,
        task=args.task,
        max_seq_len=args.max_seq_len,
        default_dataset=args.default_dataset,
        title=args.title,
    )
    interactive = sys.stdin.isatty() and not args.json
    draft = _answer_open_questions(draft, interactive=interactive)
    card = draft.card()
    check_tokenizer_files(card, draft.directory)
    report = None
    if args.check:
        with err.status("parity check: exporting to ONNX and comparing with PyTorch…"):
            report = quick_parity(card)
    path = write_user_card(card, notes=draft.notes, replace=args.replace)
    if args.json:
        print_json(
            {
                "card": card.summary(),
                "path": str(path),
                "notes": list(draft.notes),
                "parity": report.to_dict() if report is not None else None,
            }
        )
        return 0
    _print_added(card, draft.notes, report, path)
    return 0


def _print_added(card: Any, notes: tuple[str, ...], report: Any, path: Any) -> None:
    from rich.table import Table

    table = Table(title=f"Model card {card.name}", show_header=False, expand=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("family", card.family)
    table.add_row("task", card.task)
    table.add_row("labels", ", ".join(card.labels))
    table.add_row("max seq len", str(card.max_seq_len))
    table.add_row("dataset", card.default_dataset)
    table.add_row("weights", str(card.weights.path))
    if report is not None:
        table.add_row(
            "parity",
            f"{report.status.upper()} on {report.samples} synthetic inputs: max |Δlogit| "
            f"{report.max_abs_diff:.2e} (tolerance {report.tolerance:.1e}), agreement "
            f"{report.agreement:.4f}",
        )
    else:
        table.add_row("parity", "not checked (--no-check)")
    table.add_row("card", str(path))
    out.print(table, highlight=False)
    for note in notes:
        err.print(f"  · {note}", highlight=False)
    data = "" if card.default_dataset != "none" else " --dataset-file FILE --format bio|tsv|xnli"
    err.print(f"run it: kiln run --model {card.name}{data}", highlight=False)
