"""``kiln matrix`` (models x profiles x precisions, each cell a run) and ``kiln cluster``
(a host joins the lab's Ray cluster, offering the profiles it can run).

``kiln matrix --models A,B --profiles P,Q --precisions fp32,int8`` plans the cells, runs
them here one after another (``--jobs N`` side by side where the cores allow) or on a
Ray cluster (``--cluster HOST:6379``), and prints the table. Run again, the same
command finishes the matrix it started (``--new`` starts another);
``kiln matrix resume ID`` does the same by id; ``kiln matrix show ID`` prints the table.
"""

from __future__ import annotations

import argparse
import os
import shlex
from typing import Any

from rich.table import Table
from rich.text import Text

from kiln_lab.core.runconfig import BUDGET_MODES, PADDINGS, SPLITS
from kiln_lab.tui.commands.console import err, out, print_json


def _names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected names separated by commas")
    return names


def add_matrix_parser(sub: Any) -> None:
    """``kiln matrix`` and ``kiln cluster``, on the top-level sub-parsers."""
    p = sub.add_parser(
        "matrix",
        help="run models x profiles x precisions, each cell a run; show or resume a matrix",
        description="Run a matrix of cells (models x profiles x precisions [x datasets x "
        "paddings]), each an ordinary run in the store, locally or on a Ray cluster. "
        "`kiln matrix show ID`, `kiln matrix resume ID`, `kiln matrix list`.",
    )
    p.set_defaults(func=cmd_matrix)
    p.add_argument("action", nargs="?", choices=("run", "show", "resume", "list"), default="run")
    p.add_argument("matrix_id", nargs="?", metavar="ID", help="with show / resume")
    p.add_argument("--models", type=_names, help="model cards, comma-separated")
    p.add_argument("--profiles", type=_names, help="hardware profiles, comma-separated")
    p.add_argument("--precisions", type=_names, default=["fp32"], help="precisions (default fp32)")
    p.add_argument("--datasets", type=_names, help="built-in datasets (default: each card's)")
    p.add_argument(
        "--paddings",
        type=_names,
        default=["bucket"],
        help=f"{', '.join(PADDINGS)} (default bucket)",
    )
    p.add_argument("--split", choices=SPLITS, default="test")
    p.add_argument("--limit", type=int, help="evaluate only the first N examples per cell")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seq-len", type=int)
    p.add_argument(
        "--accuracy-budget",
        type=float,
        default=1.0,
        help="largest drop vs fp32 the marked fastest cell may cost (default 1.0 point)",
    )
    p.add_argument("--budget-mode", choices=BUDGET_MODES, default="absolute")
    p.add_argument(
        "--jobs", type=int, default=1, help="cells at once on this host (cores permitting)"
    )
    p.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="run the cells on the Ray cluster at ADDRESS (HOST:6379 or ray://HOST:10001)",
    )
    p.add_argument(
        "--local", action="store_true", help="with resume: run here even if it ran on a cluster"
    )
    p.add_argument(
        "--retries", type=int, default=2, help="cluster: places again after a host is lost"
    )
    p.add_argument(
        "--new", action="store_true", help="start a new matrix even if one is unfinished"
    )
    p.add_argument("--json", action="store_true", help="print the matrix as one JSON object")

    c = sub.add_parser(
        "cluster",
        help="join this host to a lab's Ray cluster, offering the profiles it can run",
        description="`kiln cluster head` starts the Ray head on this host; `kiln cluster "
        "join HEAD:6379` joins another host; `kiln cluster offer` shows what this host "
        "would offer. Ray has no authentication: keep its ports inside the lab network.",
    )
    c.set_defaults(func=cmd_cluster)
    c.add_argument("action", choices=("head", "join", "offer"))
    c.add_argument("address", nargs="?", help="with join: the head's HOST:PORT")
    c.add_argument("--slots", type=int, default=1, help="cells this host runs at once (default 1)")
    c.add_argument("--profiles", type=_names, help="offer only these (default: all available)")
    c.add_argument("--port", type=int, default=6379, help="with head: the port (default 6379)")
    c.add_argument("--object-store-mb", type=int, default=256, help="Ray object store (MB)")
    c.add_argument("--num-cpus", type=int, help="CPUs Ray may schedule here (default: all)")
    c.add_argument("--node-ip", help="this host's address as the other hosts reach it")
    c.add_argument(
        "--block", action="store_true", help="stay in the foreground; stopping it stops the node"
    )
    c.add_argument("--dry-run", action="store_true", help="print the `ray start` line only")
    c.add_argument("--json", action="store_true")


# -- kiln matrix -----------------------------------------------------------------------------
def cmd_matrix(args: argparse.Namespace) -> int:
    from kiln_lab.core.errors import ConfigError
    from kiln_lab.core.store import RunStore

    store = RunStore()
    if args.action == "list":
        return _list(store, args)
    if args.action in ("show", "resume"):
        if not args.matrix_id:
            raise ConfigError(
                f"`kiln matrix {args.action}` needs a matrix id", hint="`kiln matrix list`"
            )
        matrix = store.matrix(args.matrix_id)
        if args.action == "show":
            return _print(store, matrix.id, args.json)
        cluster = None if args.local else (args.cluster or matrix.cluster)
        if cluster:
            from kiln_lab.core.matrix.cluster import connect

            connect(cluster)
        from kiln_lab.core.matrix.cells import prepare_resume

        prepare_resume(store, matrix.id, cluster=cluster)
        err.print(f"resuming matrix {matrix.id}: finished cells are kept")
        return _drive(store, matrix.id, cluster, args)
    if args.matrix_id:
        raise ConfigError(
            "a matrix id goes with show or resume", hint=f"`kiln matrix show {args.matrix_id}`"
        )
    if not args.models or not args.profiles:
        raise ConfigError(
            "a matrix needs --models and --profiles",
            hint="e.g. kiln matrix --models zh-ner-tiny --profiles cpu-onnxruntime,cpu-openvino "
            "--precisions fp32,int8",
        )
    from kiln_lab.core.matrix.cells import open_matrix
    from kiln_lab.core.matrix.plan import MatrixSpec

    spec = MatrixSpec(
        models=tuple(args.models),
        profiles=tuple(args.profiles),
        precisions=tuple(args.precisions),
        datasets=tuple(args.datasets) if args.datasets else (None,),
        paddings=tuple(args.paddings),
        split=args.split,
        limit=args.limit,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        accuracy_budget=args.accuracy_budget,
        budget_mode=args.budget_mode,
    )
    if args.cluster:
        from kiln_lab.core.matrix.cluster import connect

        connect(args.cluster)  # no Ray, or no cluster there: said before anything is planned
    with err.status("checking every cell…"):
        matrix_id, resumed = open_matrix(store, spec, cluster=args.cluster, new=args.new)
    from kiln_lab.core.matrix.cells import cells_to_run

    cells = store.matrix_cells(matrix_id)
    skipped = sum(1 for c in cells if c.reason)
    left = len(cells_to_run(store, matrix_id))
    err.print(
        f"{'resuming' if resumed else 'matrix'} {matrix_id}: {len(cells)} cells, "
        f"{left} to run, {len(cells) - skipped - left} done, {skipped} cannot run"
        + (f" (on {args.cluster})" if args.cluster else " here")
    )
    return _drive(store, matrix_id, args.cluster, args)


def _drive(store: Any, matrix_id: str, cluster: str | None, args: argparse.Namespace) -> int:
    def notify(line: str) -> None:
        err.print(line, highlight=False, markup=False)

    try:
        if cluster:
            from kiln_lab.core.matrix.cluster import run_cluster

            run_cluster(store, matrix_id, cluster, retries=args.retries, notify=notify)
        else:
            from kiln_lab.core.matrix.local import run_local

            run_local(store, matrix_id, jobs=args.jobs, notify=notify)
    except KeyboardInterrupt:
        err.print(
            f"[yellow]matrix {matrix_id} stopped; `kiln matrix resume {matrix_id}` finishes it[/]"
        )
        if args.json:
            _print(store, matrix_id, True)
        return 130
    return _print(store, matrix_id, args.json)


def _print(store: Any, matrix_id: str, as_json: bool) -> int:
    from kiln_lab.core.matrix.table import matrix_json

    data = matrix_json(store, matrix_id)
    if as_json:
        print_json(data)
    else:
        out.print(matrix_table(data))
        for row in data["cells"]:
            if row["reason"]:
                err.print(
                    f"  {row['position']}: {row['model']} · {row['profile']} · {row['precision']}: "
                    f"{row['status']}: {row['reason']}",
                    highlight=False,
                    markup=False,
                )
    failed = [r for r in data["cells"] if r["status"] not in ("succeeded", "skipped")]
    return 1 if failed else 0


def _num(value: Any, digits: int = 4, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _where(row: dict[str, Any]) -> str:
    """The host, and the Ray node when there is one (several nodes may share a host)."""
    host = str(row["host"] or "—")
    return f"{host} node {row['node_id'][:8]}" if row.get("node_id") else host


def matrix_table(data: dict[str, Any]) -> Table:
    """The matrix as the seeds print their comparisons: one row per cell."""
    spec = data["spec"]
    unit = "points" if spec.get("budget_mode") == "absolute" else "% of the fp32 figure"
    budget = f"{spec.get('accuracy_budget')} {unit}"
    table = Table(
        title=f"Matrix {data['matrix_id']}"
        + (f" on {data['cluster']}" if data.get("cluster") else ""),
        caption=f"★ fastest cell within {budget} of fp32, per model and data",
        header_style="bold",
    )
    for name in ("#", "model", "data", "profile", "precision", "metric", "value", "Δ fp32",
                 "card", "Δ card", "samples/s", "p99 ms", "host", "status"):  # fmt: skip
        table.add_column(name, justify="right" if name in ("#", "value", "samples/s") else "left")
    for row in data["cells"]:
        status = row["status"] + (" ★" if row["fastest"] else "")
        style = {"succeeded": "green", "failed": "red", "skipped": "dim"}.get(
            row["status"], "yellow"
        )
        table.add_row(
            str(row["position"]),
            str(row["model"]),
            str(row["dataset"] or "—"),
            str(row["profile"]),
            str(row["precision"])
            + ("" if row["padding"] in (None, "bucket") else f" ({row['padding']})"),
            str(row["metric"] or "—"),
            _num(row["value"]),
            _num(row["delta_vs_fp32"], signed=True),
            _num(row["published"]),
            _num(row["delta_vs_published"], signed=True),
            _num(row["samples_per_s"], 1),
            _num(row["latency_p99_ms"], 2),
            _where(row),
            Text(status, style=style),
        )
    return table


def _list(store: Any, args: argparse.Namespace) -> int:
    from kiln_lab.core.matrix.cells import summary

    rows = [{**m.to_dict(), "counts": summary(store, m.id)} for m in store.matrices(limit=50)]
    if args.json:
        print_json(rows)
        return 0
    table = Table(title="Matrices", header_style="bold")
    for name in ("matrix", "models", "profiles", "precisions", "cells", "where"):
        table.add_column(name)
    for row in rows:
        spec = row["spec"]
        table.add_row(
            row["id"],
            ",".join(spec["models"]),
            ",".join(spec["profiles"]),
            ",".join(spec["precisions"]),
            ", ".join(f"{n} {k}" for k, n in sorted(row["counts"].items())),
            row["cluster"] or "local",
        )
    out.print(table)
    return 0


# -- kiln cluster ----------------------------------------------------------------------------
def cmd_cluster(args: argparse.Namespace) -> int:
    from kiln_lab.core.errors import ConfigError
    from kiln_lab.core.matrix.hosts import host_offer, ray_start_command

    offer = host_offer(args.slots, args.profiles)
    if args.action == "offer":
        if args.json:
            print_json(offer.to_dict())
        else:
            out.print("offers: " + (", ".join(offer.profiles) or "no profile"))
            for name, why in sorted(offer.unavailable.items()):
                err.print(f"  not offered: {name}: {why}", highlight=False, markup=False)
        return 0
    if args.action == "join" and not args.address:
        raise ConfigError(
            "`kiln cluster join` needs the head's address", hint="kiln cluster join HEAD:6379"
        )
    argv = ray_start_command(
        offer,
        head=args.action == "head",
        address=args.address,
        port=args.port,
        object_store_mb=args.object_store_mb,
        num_cpus=args.num_cpus,
        node_ip=args.node_ip,
        block=args.block,
    )
    if args.json and args.dry_run:
        print_json({"command": argv, **offer.to_dict()})
        return 0
    err.print("offers: " + (", ".join(offer.profiles) or "no profile"), highlight=False)
    out.print(shlex.join(argv), highlight=False, markup=False)  # quoted, to paste
    if args.dry_run:
        return 0
    from kiln_lab.core.matrix.cluster import import_ray

    import_ray()
    out.file.flush()
    # Replaced by `ray start`, so a signal to this process (a service stopping a --block
    # node, Ctrl-C) reaches Ray itself and stops the node, not only a wrapper.
    os.execvp(argv[0], argv)  # an argument list, no shell
    return 0  # not reached
