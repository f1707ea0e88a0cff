"""``kiln doctor`` as Rich renderables: the machine, then every profile's state."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text


def machine_table(report: dict[str, Any]) -> Table:
    table = Table(title="This machine", header_style="bold", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("found")
    py = report["python"]
    table.add_row("Python", f"{py['version']} ({py['executable']})")
    for name, info in report["packages"].items():
        version = info.get("version") or "[yellow]not installed[/]"
        extra = []
        if info.get("providers"):
            extra.append("providers: " + ", ".join(info["providers"]))
        if info.get("devices"):
            extra.append("devices: " + ", ".join(info["devices"]))
        if "cuda_build" in info:
            extra.append(f"CUDA build: {info['cuda_build'] or 'none (CPU-only)'}")
        if info.get("error"):
            extra.append(f"[red]{info['error']}[/]")
        table.add_row(name, version + (f"  ({'; '.join(extra)})" if extra else ""))
    cpu = report["cpu"]
    table.add_row(
        "CPU",
        f"{cpu['model']}: {cpu['logical_cores']} logical cores, {cpu['usable_cores']} usable",
    )
    flags = "  ".join(
        f"[green]{flag}[/]" if present else f"[dim]no {flag}[/]"
        for flag, present in cpu["flags"].items()
    )
    table.add_row("ISA flags", flags)
    table.add_row("int8 path", cpu["int8_path"])
    gpus = report["gpus"]
    if gpus["devices"]:
        for gpu in gpus["devices"]:
            table.add_row(
                f"GPU {gpu['index']}",
                f"{gpu['name']}, {gpu['memory_total_mb']} MiB, driver {gpu['driver']}",
            )
    else:
        table.add_row("GPUs", f"[dim]{gpus['nvml']}[/]")
    return table


def profiles_view(report: dict[str, Any]) -> Text:
    """One line per profile; an unavailable one lists each missing piece and the fix."""
    text = Text()
    text.append("Profiles\n", style="bold")
    for row in report["profiles"]:
        mark, style = ("✓", "green") if row["available"] else ("✗", "yellow")
        text.append(f"{mark} {row['name']:<18}", style=style)
        text.append(f" {row['runtime']} on {row['device']}, {', '.join(row['precisions'])}")
        text.append("  available\n" if row["available"] else "  unavailable\n", style=style)
        for missing in row.get("missing", []):
            text.append(f"    missing: {missing['what']}\n")
        if not row["available"] and row["fix"]:
            text.append("    fix: ", style="bold")
            text.append(f"{row['fix']}\n")
    for problem in report.get("profile_errors", []):
        text.append(f"✗ {problem.get('path')}: {problem['message']}", style="red")
        text.append(f" (fix: {problem.get('hint')})\n" if problem.get("hint") else "\n")
    return text


def doctor_view(report: dict[str, Any]) -> Group:
    return Group(machine_table(report), profiles_view(report))
