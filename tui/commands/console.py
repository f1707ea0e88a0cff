"""Where command output goes: tables and ``--json`` on stdout, everything else on stderr.

So ``kiln run --json | jq`` always sees exactly one JSON object, however much progress
the run printed on the way.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

PIPE_WIDTH = 4096
"""Width tables are laid out in when stdout is not a terminal: wide enough that no cell
is cut (``bert-base…``) or wrapped when output goes to a file, ``grep`` or ``column``;
a table is still only as wide as its content. On a terminal, its width."""

out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else PIPE_WIDTH)
err = Console(stderr=True, soft_wrap=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def json_error(exc: BaseException) -> dict[str, Any]:
    """The one object ``--json`` prints on stdout when a command fails.

    ``error`` is the whole message on one line (title, file and line, what went wrong),
    ``hint`` the fix (or None); the rest are the parts, for scripts that want them.
    """
    from kiln_lab.core.errors import KilnError

    if isinstance(exc, KilnError):
        where = f"{exc.location}: " if exc.location else ""
        return {
            "error": f"{exc.title}: {where}{exc.message}",
            "hint": exc.hint,
            **{k: v for k, v in exc.to_dict().items() if k != "hint"},
        }
    return {
        "error": f"Internal error: {type(exc).__name__}: {exc}",
        "hint": "this is a bug in Kiln; rerun with --debug for the traceback and report it",
        "kind": type(exc).__name__,
        "title": "Internal error",
    }
