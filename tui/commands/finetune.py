"""``kiln finetune MODEL``: train a built-in model from its recipe, with a progress bar.

The training itself lives in ``kiln_lab.core.training`` (headless, tested without a
terminal); this module is only its command line: the options, a Rich progress bar and
the summary, added to ``kiln`` by ``tui/cli.py``. Progress (steps, loss, examples/s,
ETA) goes to stderr; the summary, or with ``--json`` the report, goes to stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kiln_lab.core.paths import assets_dir
from kiln_lab.core.training.recipes import RECIPES, get_recipe
from kiln_lab.tui.commands.console import err, out, print_json

__all__ = ["add_finetune_parser", "cmd_finetune"]


def add_finetune_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``finetune`` to the ``kiln`` sub-commands."""
    help_ = "train a built-in model (from scratch, on its built-in dataset) and write its card"
    p = subparsers.add_parser("finetune", help=help_, description=help_)
    p.add_argument("model", metavar="MODEL", help=f"recipe name: {', '.join(sorted(RECIPES))}")
    p.add_argument("--out", type=Path, help="model directory (default assets/models/MODEL)")
    p.add_argument("--cards-dir", type=Path, help="where the card goes (default assets/cards)")
    p.add_argument("--epochs", type=int, help="epochs (default: the recipe's)")
    p.add_argument("--max-minutes", type=float, help="stop training after this many minutes")
    p.add_argument("--limit-train", type=int, help="train on the first N examples only")
    p.add_argument("--limit-eval", type=int, help="score only the first N dev and test examples")
    p.add_argument("--seed", type=int, help="random seed (default: the recipe's)")
    p.add_argument(
        "--threads",
        type=int,
        help="torch threads (default: the available cores; on a machine other jobs share, "
        "1 can be several times faster than 2)",
    )
    arch = p.add_argument_group("architecture (default: the recipe's)")
    arch.add_argument("--hidden-size", type=int)
    arch.add_argument("--layers", dest="num_layers", type=int)
    arch.add_argument("--heads", dest="num_heads", type=int)
    arch.add_argument("--intermediate-size", type=int)
    arch.add_argument("--learning-rate", type=float)
    p.add_argument("--json", action="store_true", help="print the training report as JSON")
    p.set_defaults(func=cmd_finetune)
    return p


def _command_line(args: argparse.Namespace) -> tuple[str, ...]:
    """The command as typed (``kiln finetune ...``), from ``sys.argv`` when it is there."""
    argv = sys.argv
    if "finetune" in argv and args.model in argv:
        return ("kiln", *argv[argv.index("finetune") :])
    rebuilt = ["kiln", "finetune", args.model]
    flags = {"num_layers": "--layers", "num_heads": "--heads"}
    for name in (
        "out", "cards_dir", "epochs", "max_minutes", "limit_train", "limit_eval", "seed",
        "threads", "hidden_size", "num_layers", "num_heads", "intermediate_size", "learning_rate",
    ):  # fmt: skip
        value = getattr(args, name, None)
        if value is not None:
            rebuilt += [flags.get(name, f"--{name.replace('_', '-')}"), str(value)]
    return tuple(rebuilt)


def cmd_finetune(args: argparse.Namespace) -> int:
    """Train ``args.model`` with the options given, drawing progress on stderr."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    overrides = {
        name: getattr(args, name, None)
        for name in (
            "epochs",
            "seed",
            "hidden_size",
            "num_layers",
            "num_heads",
            "intermediate_size",
            "learning_rate",
        )
    }
    recipe = get_recipe(args.model).with_changes(**overrides)
    out_dir = args.out or assets_dir() / "models" / recipe.name
    metric = "entity F1" if recipe.task == "token-classification" else "accuracy"
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "steps · loss {task.fields[loss]} · {task.fields[rate]} ex/s · "
            f"dev {metric} {{task.fields[dev]}}"
        ),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
    task = bar.add_task(f"{recipe.name}: preparing", total=None, loss="-", rate="-", dev="-")

    last_phase = ""

    from kiln_lab.core.training import TrainingProgress, train

    def on_progress(p: TrainingProgress) -> None:
        nonlocal last_phase
        label = f"{recipe.name}: {p.phase}"
        if p.phase in ("train", "evaluate dev"):
            label += f" (epoch {p.epoch}/{p.epochs})"
        fields: dict[str, Any] = {}
        if p.loss is not None:
            fields["loss"] = f"{p.loss:.4f}"
        if p.examples_per_s:
            fields["rate"] = f"{p.examples_per_s:.0f}"
        if p.dev_score is not None:
            fields["dev"] = f"{p.dev_score:.4f}"
        bar.update(task, description=label, total=p.total_steps or None, completed=p.step, **fields)
        if not err.is_terminal and (p.phase != last_phase or p.step % 200 == 0):
            # no live bar in a log file: a plain line per phase and every 200 steps
            err.print(
                f"{label}: step {p.step}/{p.total_steps}, loss {fields.get('loss', '-')}, "
                f"{fields.get('rate', '-')} ex/s, dev {metric} {fields.get('dev', '-')}, "
                f"{p.elapsed_s:.0f} s",
                highlight=False,
            )
        last_phase = p.phase

    with bar:
        report = train(
            recipe,
            out_dir,
            cards_dir=args.cards_dir,
            max_minutes=args.max_minutes,
            limit_train=args.limit_train,
            limit_eval=args.limit_eval,
            threads=args.threads,
            progress=on_progress,
            command=_command_line(args),
        )
    if args.json:
        print_json(report.to_dict())
    else:
        _print_summary(report)
    return 0


def _print_summary(report: Any) -> None:
    from rich.table import Table

    primary = "entity_f1" if "entity_f1" in report.test else "accuracy"
    table = Table(title=f"kiln finetune {report.recipe}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("weights", report.out_dir),
        ("card", report.card_path),
        ("parameters", f"{report.parameters:,}"),
        ("size", f"{report.size_mb:.2f} MB"),
        ("steps", f"{report.steps} ({report.epochs_run:g} epochs, best epoch {report.best_epoch})"),
        ("training time", f"{report.training_time_s:.0f} s, {report.threads} thread(s)"),
        ("loss", f"{report.loss_start:.4f} -> {report.loss_end:.4f}"),
        (f"dev {primary}", f"{report.dev.get(primary, 0.0):.4f}"),
        (f"test {primary}", f"{report.test.get(primary, 0.0):.4f}"),
    ]
    if report.stopped_by_time_limit:
        rows.append(("note", "stopped by --max-minutes"))
    for key, value in rows:
        table.add_row(key, value)
    out.print(table)
