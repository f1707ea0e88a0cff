"""``kiln``: the command line. With no command it opens the app.

stdout carries command output (tables, ``--json``); progress and diagnostics go to
stderr, so ``kiln run --json | jq`` always sees exactly one JSON object.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console

from kiln_lab.core.errors import Cancelled, KilnError
from kiln_lab.core.result import RunResult
from kiln_lab.core.runconfig import BUDGET_MODES, CALIBRATION_METHODS, PRECISIONS, QUANTIZATIONS

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


# -- run, attach ----------------------------------------------------------------------------
def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", required=True, help="model card name (see `kiln models`)")
    p.add_argument(
        "--profile",
        "-p",
        default="cpu-onnxruntime",
        help="hardware profile (see `kiln profiles`; default cpu-onnxruntime)",
    )
    p.add_argument(
        "--precision",
        default="fp32",
        choices=PRECISIONS,
        help="precision to build (default fp32; the profile must offer it)",
    )
    data = p.add_mutually_exclusive_group()
    data.add_argument("--dataset", "-d", help="built-in dataset (default: the card's)")
    data.add_argument("--dataset-file", help="evaluate on this file instead")
    p.add_argument(
        "--format",
        dest="dataset_format",
        choices=("bio", "tsv", "xnli"),
        help="format of --dataset-file",
    )
    p.add_argument(
        "--split",
        default="test",
        choices=("train", "dev", "test"),
        help="split of a built-in dataset (default test)",
    )
    p.add_argument("--batch-size", type=int, help="batch size (default: the profile's)")
    p.add_argument("--seq-len", type=int, help="max sequence length (default: the card's)")
    p.add_argument(
        "--padding",
        choices=("bucket", "fixed"),
        default="bucket",
        help="bucket: sort by length, pad per batch (default); fixed: pad all to "
        "--seq-len like the vendor guides",
    )
    p.add_argument("--limit", type=int, help="evaluate only the first N examples")
    p.add_argument("--weights", help="directory with the model's weights (overrides the card)")
    p.add_argument(
        "--perf-only",
        action="store_true",
        help="random weights of the card's architecture: speed only, no accuracy",
    )
    p.add_argument(
        "--parity-samples",
        type=int,
        default=32,
        help="samples compared with the PyTorch fp32 reference (default 32)",
    )
    q = p.add_argument_group("int8")
    q.add_argument(
        "--quantization",
        choices=QUANTIZATIONS,
        help="int8 variant (default: the profile's)",
    )
    q.add_argument(
        "--calibration-method",
        choices=CALIBRATION_METHODS,
        help="static int8 calibration (default: the profile's)",
    )
    q.add_argument(
        "--calibration-samples",
        type=int,
        help="train-split samples to calibrate on (default: the profile's, 200)",
    )
    q.add_argument(
        "--per-channel",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="per-channel int8 weights (default: the profile's)",
    )
    q.add_argument(
        "--accuracy-budget",
        type=float,
        default=1.0,
        help="largest metric drop int8 may cost vs fp32 (default 1.0)",
    )
    q.add_argument(
        "--budget-mode",
        choices=BUDGET_MODES,
        default="absolute",
        help="budget in points of the metric, or percent of the fp32 figure",
    )
    q.add_argument(
        "--no-guard",
        dest="guard",
        action="store_false",
        help="skip the accuracy guard (no check against fp32 on the dev split)",
    )
    q.add_argument(
        "--guard-samples",
        type=int,
        default=400,
        help="dev-split samples the guard scores on (default 400)",
    )
    q.add_argument(
        "--keep-float",
        dest="keep_float_file",
        help="keep_float.yaml from an earlier guarded run: nodes kept in float",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    p.add_argument(
        "--detach", action="store_true", help="start the run and print its id without waiting"
    )


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas, got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def _config_from_args(args: argparse.Namespace, **overrides: Any) -> Any:
    from kiln_lab.core.runconfig import RunConfig

    values = {
        "model": args.model,
        "profile": args.profile,
        "precision": args.precision,
        "dataset": args.dataset,
        "dataset_file": args.dataset_file,
        "dataset_format": args.dataset_format,
        "split": args.split,
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "limit": args.limit,
        "perf_only": args.perf_only,
        "weights": args.weights,
        "parity_samples": args.parity_samples,
        "padding": args.padding,
        "quantization": args.quantization,
        "calibration_method": args.calibration_method,
        "calibration_samples": args.calibration_samples,
        "per_channel": args.per_channel,
        "accuracy_budget": args.accuracy_budget,
        "budget_mode": args.budget_mode,
        "guard": args.guard,
        "guard_samples": args.guard_samples,
        "keep_float_file": args.keep_float_file,
    }
    return RunConfig(**(values | overrides))


def _launch(config: Any, args: argparse.Namespace) -> int:
    from kiln_lab.core.launcher import launch
    from kiln_lab.core.stages.resolve import preflight
    from kiln_lab.core.store import RunStore

    with err.status("checking model, profile and data…"):
        preflight(config)
    store = RunStore()
    run_id = launch(config, store)
    if args.detach:
        _print_json({"run_id": run_id}) if args.json else out.print(run_id)
        return 0
    return follow(store, run_id, as_json=args.json)


def cmd_run(args: argparse.Namespace) -> int:
    return _launch(_config_from_args(args), args)


def cmd_bench(args: argparse.Namespace) -> int:
    config = _config_from_args(
        args,
        evaluate=args.evaluate,
        bench_batch_sizes=args.batch_sizes,
        bench_seq_lens=args.seq_lens,
        bench_iterations=args.iterations,
        bench_duration_s=args.duration,
        bench_trials=args.trials,
        bench_warmup=args.warmup,
        instances=args.instances,
        processes=args.processes,
    )
    return _launch(config, args)


def _add_bench_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("benchmark grid")
    g.add_argument(
        "--batch-sizes",
        type=_int_list,
        default=(1, 8, 32),
        help="comma-separated batch sizes (default 1,8,32)",
    )
    g.add_argument(
        "--seq-lens",
        type=_int_list,
        default=(32, 64, 128),
        help="comma-separated sequence lengths (default 32,64,128)",
    )
    g.add_argument("--iterations", type=int, default=20, help="timed runs per trial (default 20)")
    g.add_argument(
        "--duration", type=float, help="seconds per trial instead of a fixed number of iterations"
    )
    g.add_argument(
        "--trials",
        type=int,
        default=3,
        help="repeated trials per cell; the spread shows the noise (default 3)",
    )
    g.add_argument("--warmup", type=int, default=3, help="untimed warm-up runs (default 3)")
    g.add_argument(
        "--instances", type=int, help="concurrent sessions on threads (default: the profile's)"
    )
    g.add_argument(
        "--processes",
        type=int,
        help="concurrent processes, each with its own session (default: the profile's)",
    )
    g.add_argument(
        "--evaluate",
        action="store_true",
        help="also evaluate accuracy on the dataset before benchmarking",
    )


def follow(store: Any, run_id: str, *, as_json: bool = False, cancel_on_ctrl_c: bool = True) -> int:
    """Show a run's events live until it ends.

    Ctrl-C asks the worker to cancel (for the run this command started), or just stops
    following (for ``kiln attach``: the run goes on).
    """
    from kiln_lab.tui.follow import follow_run

    try:
        status = follow_run(store, run_id, err)
    except KeyboardInterrupt:
        if not cancel_on_ctrl_c:
            err.print(f"detached; {run_id} keeps running (kiln attach {run_id})")
            return 0
        store.request_cancel(run_id)
        err.print(f"[yellow]cancelling {run_id}… (waiting for the current batch)[/]")
        try:
            status = follow_run(store, run_id, err, quiet=True)
        except KeyboardInterrupt:
            err.print(f"[yellow]left {run_id} to stop on its own[/]")
            return 130
    record = store.run(run_id)
    if as_json:
        _print_json(_json_result(record))
    elif record.result:
        from kiln_lab.tui.render import result_table

        out.print(result_table(RunResult.from_dict(record.result)))
    if record.status == "succeeded":
        return 0
    if record.error:
        err.print(f"[red]{record.error.get('title')}:[/] {record.error.get('message')}")
        if record.error.get("hint"):
            err.print(f"  fix: {record.error['hint']}")
    return 130 if status == "cancelled" else 1


def _json_result(record: Any) -> dict[str, Any]:
    result = RunResult.from_dict(record.result)
    latency = result.latency.to_dict() if result.latency else {}
    throughput = result.throughput.to_dict() if result.throughput else {}

    def section(part: Any) -> Any:
        return part.to_dict() if part is not None else None

    return {
        "run_id": record.id,
        "status": record.status,
        "model": record.model,
        "dataset": result.dataset if result.dataset is not None else record.dataset,
        "split": result.split,
        "profile": record.profile,
        "runtime": result.runtime,
        "precision": record.precision,
        "perf_only": result.perf_only,
        "metrics": section(result.metrics),
        "throughput_samples_per_s": throughput.get("samples_per_s"),
        "latency_p50_ms": latency.get("p50_ms"),
        "latency_p99_ms": latency.get("p99_ms"),
        "throughput": throughput,
        "latency": latency,
        "stages": dict(result.stages) if result.stages is not None else None,
        "parity": section(result.parity),
        "quantization": section(result.quantization),
        "guard": section(result.guard),
        "benchmark": section(result.benchmark),
        "reference": [r.to_dict() for r in result.reference]
        if result.reference is not None
        else None,
        "error": record.error,
    }


def cmd_attach(args: argparse.Namespace) -> int:
    from kiln_lab.core.store import RunStore

    store = RunStore()
    record = store.run(args.run_id)
    return follow(store, record.id, as_json=args.json, cancel_on_ctrl_c=False)


def cmd_resume(args: argparse.Namespace) -> int:
    from kiln_lab.core.launcher import resume
    from kiln_lab.core.store import RunStore

    store = RunStore()
    run_id = resume(store, store.run(args.run_id).id)
    err.print(f"resuming {run_id}: finished batches are kept, the rest is evaluated now")
    if args.detach:
        return 0
    return follow(store, run_id, as_json=args.json)


# -- history --------------------------------------------------------------------------------
def cmd_runs(args: argparse.Namespace) -> int:
    from kiln_lab.core.store import RunStore

    store = RunStore()
    records = store.runs(limit=args.limit)
    for rec in records:
        if not rec.finished:
            store.mark_interrupted_if_dead(rec.id)
    records = store.runs(limit=args.limit)
    if args.json:
        _print_json([r.to_dict() for r in records])
    elif not records:
        err.print("no runs yet: try `kiln run --model zh-ner-tiny`")
    else:
        from kiln_lab.tui.render import runs_table

        out.print(runs_table(records))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from kiln_lab.core.store import RunStore

    store = RunStore()
    record = store.run(args.run_id)
    store.mark_interrupted_if_dead(record.id)
    record = store.run(record.id)
    if args.json:
        data = record.to_dict()
        data["artifacts"] = store.artifacts(record.id)
        _print_json(data)
        return 0
    from kiln_lab.tui.render import result_table, runs_table

    out.print(runs_table([record]))
    if record.result:
        out.print(result_table(RunResult.from_dict(record.result)))
    if record.error:
        err.print(f"[red]{record.error.get('title')}:[/] {record.error.get('message')}")
    return 0


# -- catalogue ------------------------------------------------------------------------------
def cmd_models(args: argparse.Namespace) -> int:
    from rich.table import Table

    from kiln_lab.core.errors import ModelNotFound
    from kiln_lab.core.models import list_cards, locate_weights

    rows = []
    for card in list_cards():
        try:
            weights: str | None = str(locate_weights(card))
        except ModelNotFound:
            weights = None
        rows.append({**card.summary(), "weights_found": weights})
    if args.json:
        _print_json(rows)
        return 0
    table = Table(title="Model cards", header_style="bold")
    for col in ("name", "family", "task", "labels", "seq", "dataset", "weights"):
        table.add_column(col)
    for row in rows:
        table.add_row(
            row["name"],
            row["family"],
            row["task"],
            str(len(row["labels"])),
            str(row["max_seq_len"]),
            row["default_dataset"],
            "[green]found[/]" if row["weights_found"] else "[yellow]perf-only[/]",
        )
    out.print(table)
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from rich.table import Table

    from kiln_lab.core.data import builtin_datasets, describe_builtin

    rows = []
    with err.status("deriving built-in datasets (cached after the first time)…"):
        for name in builtin_datasets():
            rows.append(describe_builtin(name))
    if args.json:
        _print_json(rows)
        return 0
    table = Table(title="Built-in datasets", header_style="bold")
    for col in ("name", "task", "labels", "split", "examples", "content hash"):
        table.add_column(col)
    for row in rows:
        for i, (split, info) in enumerate(row["splits"].items()):
            table.add_row(
                row["name"] if i == 0 else "",
                row["task"] if i == 0 else "",
                str(len(row["labels"])) if i == 0 else "",
                split,
                str(info["count"]),
                info["hash"][:16],
            )
    out.print(table)
    return 0


def cmd_profiles(args: argparse.Namespace) -> int:
    from rich.table import Table

    from kiln_lab.core.profiles import check_availability, list_profiles

    if args.action == "check":
        return _check_profile_file(args)
    if args.file:
        raise KilnError(f"unexpected argument {args.file!r}", hint="kiln profiles check FILE")
    rows = []
    for profile in list_profiles():
        status = check_availability(profile)
        rows.append(
            {
                "name": profile.name,
                "title": profile.title,
                "runtime": profile.runtime,
                "device": profile.device,
                "precisions": list(profile.precisions),
                "available": status.available,
                "reason": status.reason,
                "fix": status.fix,
                "path": profile.profile_path,
            }
        )
    if args.json:
        _print_json(rows)
        return 0
    table = Table(title="Hardware profiles", header_style="bold")
    for col in ("name", "title", "runtime", "precisions", "status"):
        table.add_column(col)
    for row in rows:
        state = (
            "[green]available[/]"
            if row["available"]
            else (f"[yellow]unavailable[/]: {row['reason']} (fix: {row['fix']})")
        )
        table.add_row(
            row["name"], row["title"], row["runtime"], ", ".join(row["precisions"]), state
        )
    out.print(table)
    return 0


def _check_profile_file(args: argparse.Namespace) -> int:
    """``kiln profiles check FILE``: validate one profile; OK, or the error and exit 1."""
    from kiln_lab.core.profiles import load_profile_file

    if not args.file:
        raise KilnError("which file?", hint="kiln profiles check FILE")
    try:
        profile = load_profile_file(args.file)
    except KilnError as exc:
        if args.json:
            _print_json({"ok": False, "error": exc.to_dict()})
        else:
            err.print(exc.one_line(), highlight=False, markup=False)
        return exc.exit_code
    if args.json:
        _print_json({"ok": True, "name": profile.name, "path": profile.profile_path})
    else:
        out.print(f"OK {profile.name} ({args.file})", highlight=False, markup=False)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from kiln_lab.core.doctor import doctor

    with err.status("looking at this machine and every profile…"):
        report = doctor()
    if args.json:
        _print_json(report)
        return 0
    from kiln_lab.tui.doctor_view import doctor_view

    out.print(doctor_view(report))
    return 0


REPORT_FORMATS = ("md", "csv", "json", "html")


def _report_formats(text: str) -> list[str]:
    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in REPORT_FORMATS]
    if unknown or not formats:
        raise argparse.ArgumentTypeError(
            f"unknown report format {', '.join(unknown) or repr(text)}: "
            f"use {', '.join(REPORT_FORMATS)} (comma-separated for several)"
        )
    return formats


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kiln_lab.core.report import write_report
    from kiln_lab.core.store import RunStore

    store = RunStore()
    records = [store.run(run_id) for run_id in args.run_ids]
    history = store.runs()
    formats = list(dict.fromkeys(args.format or ["md"]))
    written = [write_report(records, history, fmt, Path(args.out)) for fmt in formats]
    if args.json:
        _print_json({"written": [str(p) for p in written]})
    else:
        for path in written:
            out.print(str(path))
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from rich.table import Table

    from kiln_lab.core import cache
    from kiln_lab.tui.render import when

    if args.action == "clear":
        count, freed = cache.clear(older_than_days=args.older_than)
        if args.json:
            _print_json({"removed": count, "freed_bytes": freed})
        else:
            out.print(
                f"removed {count} cache entr{'y' if count == 1 else 'ies'}, "
                f"{freed / 1e6:.1f} MB freed"
            )
        return 0
    items = cache.entries()
    if args.json:
        _print_json([e.to_dict() for e in items])
        return 0
    table = Table(title="Artifact cache", header_style="bold")
    for col in ("key", "kind", "size", "modified", "state"):
        table.add_column(col)
    for e in items:
        table.add_row(
            e.key,
            e.kind,
            f"{e.size / 1e6:.1f} MB",
            when(e.modified),
            "[green]complete[/]" if e.complete else "[yellow]incomplete[/]",
        )
    out.print(table)
    err.print(f"{len(items)} entries, {sum(e.size for e in items) / 1e6:.1f} MB")
    return 0


def cmd_app(args: argparse.Namespace) -> int:
    from kiln_lab.tui.app import run_app

    return run_app(attach=getattr(args, "attach", None))


# -- wiring ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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

    _add_run_options(add("run", cmd_run, "build, verify and evaluate a model on a profile"))
    bench = add(
        "bench",
        cmd_bench,
        "build a model and benchmark it on a grid of batch sizes x sequence lengths",
    )
    _add_run_options(bench)
    _add_bench_options(bench)
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
    add("models", cmd_models, "list model cards").add_argument("--json", action="store_true")
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
    p.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    p.add_argument(
        "--format",
        action="extend",
        type=_report_formats,
        metavar="md|csv|json|html",
        help="report formats, comma-separated or repeated (default md)",
    )
    p.add_argument("--out", default="kiln-report", help="output directory (default kiln-report)")
    p.add_argument("--json", action="store_true", help="print the written paths as JSON")
    p = add("cache", cmd_cache, "list or clear cached exports, fused graphs and int8 models")
    p.add_argument("action", nargs="?", choices=("ls", "clear"), default="ls")
    p.add_argument(
        "--older-than",
        type=float,
        metavar="DAYS",
        help="with clear: only entries older than DAYS (incomplete ones always)",
    )
    p.add_argument("--json", action="store_true")
    p = add("app", cmd_app, "open the terminal app")
    p.add_argument("--attach", metavar="RUN_ID", help="open this run live (full id or prefix)")
    from kiln_lab.tui.commands.finetune import add_finetune_parser

    add_finetune_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # A process started where SIGINT is ignored (a background job, some CI runners)
    # inherits that, and Python then never raises KeyboardInterrupt: Ctrl-C must work.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", cmd_app)
    try:
        return func(args)
    except Cancelled as exc:
        err.print(f"[yellow]{exc.one_line()}[/]")
        return exc.exit_code
    except KilnError as exc:
        if args.debug:
            err.print_exception()
        err.print(f"[red]error:[/] {exc.one_line()}", highlight=False)
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
