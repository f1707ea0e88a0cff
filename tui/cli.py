"""``kiln``: the command line. With no command it opens the app.

This module wires the sub-commands (one module per group in :mod:`kiln_lab.tui.commands`)
and turns Kiln's errors into one line on stderr and an exit code. stdout carries command
output only (tables, ``--json``), so ``kiln run --json | jq`` always sees one object.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import NoReturn

from kiln_lab.core.errors import Cancelled, KilnError
from kiln_lab.tui.commands.artifacts import (
    add_cache_options,
    add_export_options,
    cmd_cache,
    cmd_export,
)
from kiln_lab.tui.commands.catalogue import (
    cmd_datasets,
    cmd_doctor,
    cmd_models,
    cmd_profiles,
)
from kiln_lab.tui.commands.console import err, json_error, print_json
from kiln_lab.tui.commands.history import cmd_report, cmd_runs, cmd_show, report_formats
from kiln_lab.tui.commands.run import (
    add_bench_options,
    add_run_options,
    cmd_attach,
    cmd_bench,
    cmd_resume,
    cmd_run,
)


def cmd_app(args: argparse.Namespace) -> int:
    from kiln_lab.tui.app import run_app

    return run_app(attach=getattr(args, "attach", None))


class UsageError(KilnError):
    title = "Usage error"
    exit_code = 2


class KilnArgumentParser(argparse.ArgumentParser):
    """argparse that raises a ``UsageError`` instead of exiting, so that ``--json`` can
    print its one error object for a mistyped option too (sub-parsers inherit the class)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(f"{self.prog}: {message}", hint=f"`{self.prog} --help` lists the options")


# -- wiring ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = KilnArgumentParser(
        prog="kiln",
        description="Build, evaluate and benchmark BERT-family models on hardware targets. "
        "Without a command, opens the terminal app.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help_: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    add_run_options(add("run", cmd_run, "build, verify and evaluate a model on a profile"))
    bench = add(
        "bench",
        cmd_bench,
        "build a model and benchmark it on a grid of batch sizes x sequence lengths",
    )
    add_run_options(bench)
    add_bench_options(bench)
    p = add("attach", cmd_attach, "follow a running (or finished) run live")
    p.add_argument("run_id")
    p.add_argument("--json", action="store_true")
    p = add("resume", cmd_resume, "continue an interrupted run from its stored progress")
    p.add_argument("run_id")
    p.add_argument("--json", action="store_true")
    p.add_argument("--detach", action="store_true", help="start it and return")
    p = add("runs", cmd_runs, "list the runs in the store (KILN_HOME)")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p = add("show", cmd_show, "show one run's results")
    p.add_argument("run_id")
    p.add_argument("--json", action="store_true")
    from kiln_lab.tui.commands.models_add import add_models_options

    add_models_options(
        add("models", cmd_models, "list model cards; `add DIR` adds your own Hugging Face model")
    )
    add(
        "datasets", cmd_datasets, "list built-in datasets with split counts and hashes"
    ).add_argument("--json", action="store_true")
    p = add(
        "profiles",
        cmd_profiles,
        "list hardware profiles and whether they can run here; `check FILE` validates one",
    )
    p.add_argument("action", nargs="?", choices=("list", "check"), default="list")
    p.add_argument("file", nargs="?", help="the profile YAML to check")
    p.add_argument("--json", action="store_true")
    add(
        "doctor",
        cmd_doctor,
        "versions, CPU flags, GPUs, and every profile's availability on this machine",
    ).add_argument("--json", action="store_true")
    p = add("report", cmd_report, "write a comparison report of runs (md, csv, json, html)")
    p.add_argument("run_ids", nargs="+", metavar="RUN_ID", help="runs, or a matrix id (mx-...)")
    p.add_argument(
        "--format",
        action="extend",
        type=report_formats,
        metavar="md|csv|json|html",
        help="report formats, comma-separated or repeated (default md)",
    )
    p.add_argument("--out", default="kiln-report", help="output directory (default kiln-report)")
    p.add_argument("--json", action="store_true", help="print the written paths as JSON")
    add_cache_options(
        add(
            "cache",
            cmd_cache,
            "cached exports, fused graphs and int8 models: ls (with the runs that use each), "
            "prune (to a size limit), clear",
        )
    )
    add_export_options(
        add("export", cmd_export, "copy a run's built artifacts to a directory, with a manifest")
    )
    p = add("app", cmd_app, "open the terminal app")
    p.add_argument("--attach", metavar="RUN_ID", help="open this run live (full id or prefix)")
    from kiln_lab.tui.commands.finetune import add_finetune_parser

    add_finetune_parser(sub)
    from kiln_lab.tui.commands.matrix import add_matrix_parser

    add_matrix_parser(sub)
    from kiln_lab.tui.commands.serve import add_serve_parser

    add_serve_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # A process started where SIGINT is ignored (a background job, some CI runners)
    # inherits that, and Python then never raises KeyboardInterrupt: Ctrl-C must work.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    words = list(sys.argv[1:] if argv is None else argv)
    # --json promises one object on stdout, a failure included: {"error": ..., "hint": ...}.
    as_json = "--json" in words
    parser = build_parser()
    try:
        args = parser.parse_args(words)
    except UsageError as exc:
        err.print(f"[red]error:[/] {exc.one_line()}", highlight=False)
        if as_json:
            print_json(json_error(exc))
        return exc.exit_code
    func = getattr(args, "func", cmd_app)
    as_json = bool(getattr(args, "json", False))
    try:
        return func(args)
    except Cancelled as exc:
        err.print(f"[yellow]{exc.one_line()}[/]")
        if as_json:
            print_json(json_error(exc))
        return exc.exit_code
    except KilnError as exc:
        if args.debug:
            err.print_exception()
        err.print(f"[red]error:[/] {exc.one_line()}", highlight=False)
        if as_json:
            print_json(json_error(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        if as_json:
            print_json({"error": "interrupted", "hint": None})
        return 130
    except Exception as exc:
        if not as_json:
            raise
        # A bug in Kiln: the traceback on stderr, and still one object on stdout.
        err.print_exception()
        print_json(json_error(exc))
        return 1


if __name__ == "__main__":
    sys.exit(main())
