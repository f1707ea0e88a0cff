"""``kiln runs``, ``kiln show`` and ``kiln report``: what the run store holds."""

from __future__ import annotations

import argparse
from typing import Any

from kiln_lab.core.errors import KilnError
from kiln_lab.core.result import RunResult
from kiln_lab.tui.commands.console import err, out, print_json


def _settle(store: Any, run_id: str) -> None:
    """Mark a run whose worker died as interrupted, if the store can be written.

    Read commands must work on a read-only store and on a full disk: there the run is
    shown as last recorded, and stderr says why it was not updated.
    """
    if store.readonly:
        return
    try:
        store.mark_interrupted_if_dead(run_id)
    except KilnError as exc:
        err.print(f"[yellow]warning:[/] {run_id} not updated: {exc.one_line()}", highlight=False)


def cmd_runs(args: argparse.Namespace) -> int:
    from kiln_lab.core.store import RunStore

    store = RunStore()
    records = store.runs(limit=args.limit)
    for rec in records:
        if not rec.finished:
            _settle(store, rec.id)
    records = store.runs(limit=args.limit)
    if args.json:
        print_json([r.to_dict() for r in records])
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
    _settle(store, record.id)
    record = store.run(record.id)
    if args.json:
        data = record.to_dict()
        data["artifacts"] = store.artifacts(record.id)
        print_json(data)
        return 0
    from kiln_lab.tui.render import artifacts_table, result_view, runs_table

    out.print(runs_table([record]))
    if record.result:
        out.print(result_view(RunResult.from_dict(record.result)))
    artifacts = store.artifacts(record.id)
    if artifacts:
        out.print(artifacts_table(artifacts))
        err.print(f"copy them with their manifest: kiln export {record.id} --to DIR")
    if record.error:
        err.print(f"[red]{record.error.get('title')}:[/] {record.error.get('message')}")
    return 0


REPORT_FORMATS = ("md", "csv", "json", "html")


def report_formats(text: str) -> list[str]:
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
    run_ids: list[str] = []
    for given in args.run_ids:
        if given.startswith("mx-"):  # a matrix: its cells' runs, in table order
            from kiln_lab.core.matrix.table import matrix_run_ids

            run_ids += matrix_run_ids(store, store.matrix(given).id)
        else:
            run_ids.append(given)
    records = [store.run(run_id) for run_id in run_ids]
    history = store.runs()
    formats = list(dict.fromkeys(args.format or ["md"]))
    written = [write_report(records, history, fmt, Path(args.out)) for fmt in formats]
    if args.json:
        print_json({"written": [str(p) for p in written]})
    else:
        for path in written:
            out.print(str(path))
    return 0
