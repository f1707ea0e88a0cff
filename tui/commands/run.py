"""``kiln run``, ``kiln bench``, ``kiln attach`` and ``kiln resume``: start a run in a
worker and follow it live, or pick one up again.

The run goes on in its worker whatever happens to this process; Ctrl-C here asks it to
cancel (``run``, ``bench``) or just stops following (``attach``).
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable
from typing import Any

from kiln_lab.core.result import RunResult
from kiln_lab.core.runconfig import (
    AUTO,
    BUDGET_MODES,
    CALIBRATION_METHODS,
    PRECISIONS,
    QUANTIZATIONS,
)
from kiln_lab.tui.commands.console import err, out, print_json


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        "-m",
        required=True,
        help="model card name (see `kiln models`), or a Hugging Face model directory",
    )
    p.add_argument(
        "--profile",
        "-p",
        default="cpu-onnxruntime",
        help="hardware profile (see `kiln profiles`; default cpu-onnxruntime); auto: the "
        "fastest CPU build within the accuracy budget, probed on this machine",
    )
    p.add_argument(
        "--precision",
        default="fp32",
        choices=(*PRECISIONS, AUTO),
        help="precision to build (default fp32; the profile must offer it); auto: the "
        "fastest this CPU offers within the accuracy budget, probed on this machine",
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
        choices=("train", "dev", "test"),
        help="split of a built-in dataset (default test)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        help="examples per batch, at most (bucketing cuts a batch short where the lengths "
        "jump; default: the profile's)",
    )
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
        "--confidence",
        type=float,
        default=0.95,
        help="confidence level of every accuracy interval (default 0.95)",
    )
    p.add_argument(
        "--until",
        type=float,
        metavar="WIDTH",
        help="stop evaluating once the main metric's anytime-valid interval is narrower "
        "than WIDTH (full width, 0-1 scale, e.g. 0.05)",
    )
    p.add_argument(
        "--no-paired",
        dest="paired",
        action="store_false",
        help="skip the paired comparison of an int8/fp16 build with fp32 on the same "
        "examples (saves one fp32 pass)",
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
        help="largest metric drop int8 may cost vs fp32 (default 1.0)",
    )
    q.add_argument(
        "--budget-mode",
        choices=BUDGET_MODES,
        help="budget in points of the metric, or percent of the fp32 figure",
    )
    q.add_argument(
        "--no-guard",
        dest="guard",
        action="store_false",
        default=None,
        help="skip the accuracy guard (no check against fp32 on the dev split)",
    )
    q.add_argument(
        "--guard-samples",
        type=int,
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


GUARD_OPTIONS = ("accuracy_budget", "budget_mode", "guard_samples")
"""Options only the int8 accuracy guard reads; argparse leaves them None when not given."""


def _refuse_ignored_options(args: argparse.Namespace) -> None:
    """Options that this combination would accept and then never read are refused.

    Their argparse defaults are None so that "not given" can be told from "given the
    default"; RunConfig then fills in its own defaults. Checks that need only the config
    itself live in ``RunConfig``; these need to know what the operator typed.
    """
    from kiln_lab.core.errors import ConfigError
    from kiln_lab.core.runconfig import option_flag, options_apply

    if args.split is not None and args.dataset_file:
        raise ConfigError(
            "--split picks a split of a built-in dataset; a --dataset-file is read whole",
            hint="drop --split, or use --dataset instead of --dataset-file",
        )
    guard_given = [name for name in GUARD_OPTIONS if getattr(args, name) is not None]
    if guard_given and args.precision not in ("int8", AUTO):
        raise ConfigError(
            f"{options_apply(guard_given)} only to --precision int8, not {args.precision}",
            hint="add --precision int8, or drop the int8 options",
        )
    if args.guard is False and args.precision != "int8":
        raise ConfigError(
            f"--no-guard only applies to --precision int8, not {args.precision}",
            hint="drop --no-guard",
        )
    if guard_given and (args.guard is False or args.perf_only):
        reason = "--no-guard" if args.guard is False else "--perf-only (no accuracy to guard)"
        raise ConfigError(
            f"{', '.join(map(option_flag, guard_given))} tune the accuracy guard, which "
            f"{reason} turns off",
            hint="drop them, or run with the guard",
        )
    if (
        getattr(args, "duration", None) is not None
        and getattr(args, "iterations", None) is not None
    ):
        raise ConfigError(
            "--iterations and --duration both size a trial; give one",
            hint="--duration S runs each trial for S seconds; --iterations N for N runs",
        )


def _model_argument(model: str) -> str:
    """``--model``: a card's name as given; a model directory as an absolute path, so the
    worker (and a later ``kiln resume`` from elsewhere) reads the same directory."""
    from pathlib import Path

    from kiln_lab.core.errors import KilnError
    from kiln_lab.core.models.cards import find_card
    from kiln_lab.core.models.lookup import looks_like_a_path

    directory = Path(model).expanduser()
    if not directory.is_dir():
        return model
    if not looks_like_a_path(model):
        try:
            find_card(model)  # a bare word is a card's name first (as get_card reads it)
            return model
        except KilnError:
            pass
    return str(directory.resolve())


def _config_from_args(args: argparse.Namespace, **overrides: Any) -> Any:
    """The RunConfig for these options; options that would have no effect are refused."""
    from kiln_lab.core.runconfig import RunConfig

    _refuse_ignored_options(args)
    values = {
        "model": _model_argument(args.model),
        "profile": args.profile,
        "precision": args.precision,
        "dataset": args.dataset,
        "dataset_file": args.dataset_file,
        "dataset_format": args.dataset_format,
        "split": args.split or "test",
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
        "confidence": args.confidence,
        "until": args.until,
        "paired": args.paired,
    }
    given = {k: v for k, v in values.items() if k not in (*GUARD_OPTIONS, "guard") or v is not None}
    return RunConfig(**(given | overrides))


def _launch(config: Any, args: argparse.Namespace) -> int:
    from kiln_lab.core.launcher import launch
    from kiln_lab.core.stages.resolve import preflight
    from kiln_lab.core.store import RunStore

    with err.status("checking model, profile and data…"):
        preflight(config)
    store = RunStore()
    run_id = launch(config, store)
    if args.detach:
        print_json({"run_id": run_id}) if args.json else out.print(run_id)
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
        bench_iterations=20 if args.iterations is None else args.iterations,
        bench_duration_s=args.duration,
        bench_trials=args.trials,
        bench_warmup=args.warmup,
        instances=args.instances,
        processes=args.processes,
    )
    return _launch(config, args)


def add_bench_options(p: argparse.ArgumentParser) -> None:
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
    g.add_argument("--iterations", type=int, help="timed runs per trial (default 20)")
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


TERMINATED_EXIT = 143
"""128 + SIGTERM, as a shell reports a process the signal ended."""


class Terminated(KeyboardInterrupt):
    """SIGTERM to the client, handled like Ctrl-C, so ``--json`` still prints one object."""


def _terminate_like_ctrl_c() -> Callable[[], None]:
    """Route SIGTERM through the Ctrl-C path while a run is followed; returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def terminated(signum: int, frame: object) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminated)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _print_json_if(as_json: bool, store: Any, run_id: str) -> None:
    """The run's record as it stands, for a script that stopped following early."""
    if as_json:
        print_json(_json_result(store.run(run_id)))


def follow(
    store: Any,
    run_id: str,
    *,
    as_json: bool = False,
    cancel_on_ctrl_c: bool = True,
    after: int = 0,
) -> int:
    """Show a run's events after seq ``after`` (the attempt followed) live until it ends.

    Ctrl-C asks the worker to cancel (for the run this command started), or just stops
    following (for ``kiln attach``: the run goes on). The status, figures and exit code
    come from the run's record as stored once it ended, never from what was followed.
    """
    from kiln_lab.tui.follow import follow_run

    restore = _terminate_like_ctrl_c()
    stopped = 0
    try:
        try:
            status = follow_run(store, run_id, err, after=after)
        except KeyboardInterrupt as exc:
            stopped = TERMINATED_EXIT if isinstance(exc, Terminated) else 130
            if not cancel_on_ctrl_c:
                err.print(f"detached; {run_id} keeps running (kiln attach {run_id})")
                _print_json_if(as_json, store, run_id)
                return 0 if stopped == 130 else stopped
            store.request_cancel(run_id)
            err.print(f"[yellow]cancelling {run_id}… (waiting for the current batch)[/]")
            try:
                status = follow_run(store, run_id, err, quiet=True, after=after)
            except KeyboardInterrupt:
                err.print(f"[yellow]left {run_id} to stop on its own[/]")
                _print_json_if(as_json, store, run_id)
                return stopped
    finally:
        restore()
    record = store.run(run_id)
    if as_json:
        print_json(_json_result(record))
    elif record.result:
        from kiln_lab.tui.render import result_view

        out.print(result_view(RunResult.from_dict(record.result)))
    if record.status == "succeeded":
        return 0
    if record.error:
        err.print(f"[red]{record.error.get('title')}:[/] {record.error.get('message')}")
        if record.error.get("hint"):
            err.print(f"  fix: {record.error['hint']}")
    if stopped:
        return stopped
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
        "profile": record.build[0],
        "runtime": result.runtime,
        "precision": record.build[1],
        "perf_only": result.perf_only,
        "examples": result.examples,
        "held_apart": dict(result.held_apart) if result.held_apart is not None else None,
        "worker": dict(result.worker) if result.worker is not None else None,
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
    # A resumed run holds an earlier attempt's RunFinished: follow the latest attempt.
    after = store.attempt_start(record.id)
    return follow(store, record.id, as_json=args.json, cancel_on_ctrl_c=False, after=after)


def cmd_resume(args: argparse.Namespace) -> int:
    from kiln_lab.core.launcher import resume
    from kiln_lab.core.store import RunStore

    store = RunStore()
    run_id = store.run(args.run_id).id
    store.mark_interrupted_if_dead(run_id)
    # Events of this attempt come after everything stored now (including the earlier
    # attempt's RunFinished, which the follower must not stop at).
    after = store.last_seq(run_id)
    resume(store, run_id)
    err.print(f"resuming {run_id}: finished batches are kept, the rest is evaluated now")
    if args.detach:
        return 0
    return follow(store, run_id, as_json=args.json, after=after)
