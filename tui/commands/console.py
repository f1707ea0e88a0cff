"""Where command output goes: tables and ``--json`` on stdout, everything else on stderr.

So ``kiln run --json | jq`` always sees exactly one JSON object, however much progress
the run printed on the way.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()
