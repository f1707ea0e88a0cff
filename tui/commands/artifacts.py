"""``kiln export`` and ``kiln cache``: what runs built, where it lies, and taking it away.

``kiln export RUN --to DIR`` copies a run's artifacts out with a manifest;
``kiln cache ls`` says which model, precision and profile each cache entry was built
for (from the runs that recorded it); ``kiln cache prune`` keeps the cache under its
limit, never removing an entry a running run uses.
"""

from __future__ import annotations

import argparse
from typing import Any

from kiln_lab.tui.commands.console import err, out, print_json


def add_export_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--to", required=True, metavar="DIR", help="a new or empty directory")
    p.add_argument("--json", action="store_true", help="print the manifest")


def add_cache_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=("ls", "prune", "clear"), default="ls")
    p.add_argument(
        "--older-than",
        type=float,
        metavar="DAYS",
        help="with clear: only entries older than DAYS (incomplete ones always)",
    )
    p.add_argument(
        "--max-size",
        metavar="SIZE",
        help="with prune: the limit (e.g. 4G, 500M; default cache_max_size in "
        "KILN_HOME/config.yaml, or KILN_CACHE_MAX_SIZE, else 4G)",
    )
    p.add_argument("--json", action="store_true")


def cmd_export(args: argparse.Namespace) -> int:
    from kiln_lab.core.run_export import MANIFEST, export_run
    from kiln_lab.core.store import RunStore
    from kiln_lab.tui.render import size_text

    store = RunStore()
    manifest = export_run(store, args.run_id, args.to)
    if args.json:
        print_json(manifest)
        return 0
    from pathlib import Path

    from rich.table import Table

    dest = Path(args.to).expanduser().resolve()
    table = Table(title=f"Exported {manifest['run_id']} to {dest}", header_style="bold")
    for col in ("artifact", "file", "size", "sha256"):
        table.add_column(col, justify="right" if col == "size" else "left")
    for item in manifest["files"]:
        table.add_row(item["artifact"], item["path"], size_text(item["size"]), item["sha256"][:16])
    out.print(table)
    err.print(
        f"{manifest['model']} · {manifest['precision']} · {manifest['profile']}; "
        f"{len(manifest['files'])} files, sha256 and versions in {dest / MANIFEST}",
        highlight=False,
    )
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from kiln_lab.core import cache
    from kiln_lab.core.store import RunStore

    if args.action == "clear":
        count, freed = cache.clear(older_than_days=args.older_than)
        if args.json:
            print_json({"removed": count, "freed_bytes": freed})
        else:
            out.print(
                f"removed {count} cache entr{'y' if count == 1 else 'ies'}, "
                f"{freed / 1e6:.1f} MB freed"
            )
        return 0
    if args.action == "prune":
        return _prune(args, RunStore())
    return _list(args, cache.entries(), cache.uses(RunStore()))


def _list(args: argparse.Namespace, items: list[Any], used: dict[str, list[Any]]) -> int:
    from rich.table import Table

    from kiln_lab.core.settings import cache_max_bytes
    from kiln_lab.tui.render import size_text, when

    if args.json:
        rows = [{**e.to_dict(), "runs": [u.to_dict() for u in used.get(e.key, [])]} for e in items]
        print_json(rows)
        return 0
    table = Table(title="Artifact cache", header_style="bold")
    for col in ("key", "kind", "model", "precision", "profile", "runs", "size", "used", "state"):
        table.add_column(col, justify="right" if col == "size" else "left")
    for e in items:
        runs = used.get(e.key, [])

        def joined(field: str, runs: list[Any] = runs) -> str:
            return ", ".join(dict.fromkeys(getattr(u, field) for u in runs)) or "—"

        shown = ", ".join(u.run_id + (" (running)" if u.active else "") for u in runs[:3])
        if len(runs) > 3:
            shown += f" +{len(runs) - 3} more"
        table.add_row(
            e.key,
            e.kind,
            joined("model"),
            joined("precision"),
            joined("profile"),
            shown or "none recorded",
            size_text(e.size),
            when(e.modified),
            "[green]complete[/]" if e.complete else "[yellow]incomplete[/]",
        )
    out.print(table)
    total, limit = sum(e.size for e in items), cache_max_bytes()
    over = " — over the limit: `kiln cache prune`" if total > limit else ""
    err.print(f"{len(items)} entries, {size_text(total)} of a {size_text(limit)} limit{over}")
    return 0


def _prune(args: argparse.Namespace, store: Any) -> int:
    from kiln_lab.core import cache
    from kiln_lab.core.settings import cache_max_bytes, parse_size
    from kiln_lab.tui.render import size_text

    limit = parse_size(args.max_size) if args.max_size else cache_max_bytes()
    pruned = cache.prune(limit, store)
    if args.json:
        print_json(pruned.to_dict())
        return 0
    out.print(
        f"removed {len(pruned.removed)} cache entr{'y' if len(pruned.removed) == 1 else 'ies'}, "
        f"{size_text(pruned.before - pruned.after)} freed; the cache holds "
        f"{size_text(pruned.after)} (limit {size_text(limit)})"
    )
    if pruned.kept_in_use and pruned.after > limit:
        err.print(
            f"[yellow]kept {len(pruned.kept_in_use)} entr"
            f"{'y' if len(pruned.kept_in_use) == 1 else 'ies'} a running run uses; prune again "
            "when it has finished[/]"
        )
    return 0
