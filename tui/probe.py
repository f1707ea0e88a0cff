"""``python -m tui.probe``: the catalogue as JSON lines, from a process of its own.

Reading the cards imports pydantic, and checking whether profiles can run here may
import torch (a CUDA check) or ONNX Runtime: seconds of CPU and hundreds of MB that
would hold the app's GIL and stay in its memory. So the app asks this small process,
which prints the catalogue twice: first without the availability checks (fast), then
with them.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Any

from kiln_lab.tui.catalogue import (
    Catalogue,
    ModelEntry,
    ProfileEntry,
    load_catalogue,
    with_availability,
)


def to_json(catalogue: Catalogue) -> str:
    return json.dumps(asdict(catalogue), ensure_ascii=False, default=str)


def from_json(line: str) -> Catalogue:
    data: dict[str, Any] = json.loads(line)
    return Catalogue(
        models=tuple(
            ModelEntry(**(m | {"references": tuple(m.get("references") or ())}))
            for m in data.get("models", ())
        ),
        profiles=tuple(
            ProfileEntry(**(p | {"precisions": tuple(p.get("precisions") or ())}))
            for p in data.get("profiles", ())
        ),
        datasets=tuple(tuple(d) for d in data.get("datasets", ())),  # type: ignore[misc]
        dataset_tasks=tuple(tuple(d) for d in data.get("dataset_tasks", ())),  # type: ignore[misc]
        problems=tuple(data.get("problems", ())),
    )


def main() -> int:
    catalogue = load_catalogue(check_profiles=False)
    print(to_json(catalogue), flush=True)
    print(to_json(with_availability(catalogue)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
