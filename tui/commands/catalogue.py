"""``kiln models``, ``datasets``, ``profiles`` and ``doctor``: what this Kiln can run,
and on what (``kiln cache`` is in :mod:`.artifacts`)."""

from __future__ import annotations

import argparse
import shlex

from kiln_lab.core.errors import KilnError
from kiln_lab.tui.commands.console import err, out, print_json


def cmd_models(args: argparse.Namespace) -> int:
    from rich.table import Table

    from kiln_lab.core.errors import ModelNotFound
    from kiln_lab.core.models import list_cards, locate_weights
    from kiln_lab.core.models.cards import is_user_card

    if getattr(args, "action", "list") == "add":
        from kiln_lab.tui.commands.models_add import cmd_models_add

        return cmd_models_add(args)
    if getattr(args, "directory", None):
        raise KilnError(f"unexpected argument {args.directory!r}", hint="kiln models add DIR")
    rows = []
    for card in list_cards():
        try:
            weights: str | None = str(locate_weights(card))
        except ModelNotFound:
            weights = None
        origin = "yours" if is_user_card(card) else "built-in"
        rows.append({**card.summary(), "weights_found": weights, "card": origin})
    if args.json:
        print_json(rows)
        return 0
    table = Table(title="Model cards", header_style="bold")
    for col in ("name", "family", "task", "labels", "seq", "dataset", "weights", "card"):
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
            row["card"],
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
        print_json(rows)
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
    for row in rows:
        for entry in row.get("changelog", ()):
            splits = ", ".join(
                f"{split} {info['count']} ({info['hash'][:16]})"
                for split, info in entry["splits"].items()
            )
            out.print(
                f"{row['name']} derivation v{entry['version']} (replaced by "
                f"{entry['replaced_by']}): {entry['rules']}; {splits}",
                markup=False,
            )
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
        print_json(rows)
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
            print_json({"ok": False, "error": exc.to_dict()})
        else:
            err.print(exc.one_line(), highlight=False, markup=False)
        return exc.exit_code
    commands = [list(command.run) for command in profile.detect.commands]
    if args.json:
        print_json(
            {
                "ok": True,
                "name": profile.name,
                "path": profile.profile_path,
                "detect_commands": commands,
            }
        )
        return 0
    out.print(f"OK {profile.name} ({args.file})", highlight=False, markup=False)
    if commands:
        # A profile runs these programs whenever it is checked for availability (every
        # `kiln run --profile FILE`): the operator sees them before trusting the file.
        out.print(
            f"detect.commands: {len(commands)} program(s) this profile runs on every "
            "availability check (kiln run --profile, kiln profiles, kiln doctor):",
            highlight=False,
            markup=False,
        )
        for argv in commands:
            out.print(f"  $ {shlex.join(argv)}", highlight=False, markup=False)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from kiln_lab.core.doctor import doctor

    with err.status("looking at this machine and every profile…"):
        report = doctor()
    if args.json:
        print_json(report)
        return 0
    from kiln_lab.tui.doctor_view import doctor_view

    out.print(doctor_view(report))
    return 0
