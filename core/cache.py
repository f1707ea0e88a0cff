"""The artifact cache: exports, fused graphs and int8 models keyed by their inputs.

Each entry is a directory named by the content hash of everything it was built from
(weights, options, calibration set, tool versions) holding ``model.onnx`` and a
``meta.json`` written last, so an entry without ``meta.json`` is incomplete and never
used. Clearing removes whole entries, and leftover temporary directories.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln_lab.core.paths import cache_dir


@dataclass(frozen=True)
class CacheEntry:
    key: str
    path: Path
    kind: str
    size: int
    modified: float
    complete: bool
    meta: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "path": str(self.path),
            "kind": self.kind,
            "size": self.size,
            "modified": self.modified,
            "complete": self.complete,
        }


def _kind(meta: dict[str, Any]) -> str:
    if "fused" in meta:
        return "fused graph"
    if "recipe" in meta:
        recipe = meta["recipe"]
        return f"int8 {recipe.get('kind', '')}".strip()
    if "opset" in meta:
        return "onnx export"
    return "artifact"


def entries() -> list[CacheEntry]:
    """Every cache entry (and every incomplete or temporary one), newest first."""
    root = cache_dir("artifacts")
    found = []
    for path in root.iterdir():
        if not path.is_dir():
            continue
        meta_path = path / "meta.json"
        try:
            meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        except (OSError, json.JSONDecodeError):
            meta = {}
        files = [f for f in path.rglob("*") if f.is_file()]
        found.append(
            CacheEntry(
                key=path.name,
                path=path,
                kind="temporary" if path.name.startswith(".") else _kind(meta),
                size=sum(f.stat().st_size for f in files),
                modified=max((f.stat().st_mtime for f in files), default=path.stat().st_mtime),
                complete=bool(meta) and (path / "model.onnx").exists(),
                meta=meta,
            )
        )
    return sorted(found, key=lambda e: e.modified, reverse=True)


def clear(*, older_than_days: float | None = None) -> tuple[int, int]:
    """Remove entries (all, or those older than N days); returns (entries, bytes) freed."""
    cutoff = time.time() - older_than_days * 86400 if older_than_days is not None else None
    count = freed = 0
    for entry in entries():
        if cutoff is not None and entry.modified > cutoff and entry.complete:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        count += 1
        freed += entry.size
    return count, freed
