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


# -- which runs use which entry, and keeping the cache under its limit ---------------------
TEMPORARY_GRACE_S = 3600.0
"""A build's temporary directory younger than this may belong to a run building it now."""


@dataclass(frozen=True)
class EntryUse:
    """A run that recorded an artifact inside a cache entry."""

    run_id: str
    model: str
    precision: str
    profile: str
    status: str
    created: float
    active: bool
    """The run has not finished and its worker is alive (or not started yet)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "model": self.model,
            "precision": self.precision,
            "profile": self.profile,
            "status": self.status,
            "active": self.active,
        }


def entry_key(path: str | Path, root: Path | None = None) -> str | None:
    """The cache entry a file lies in (its directory's name), or None outside the cache."""
    root = (root or cache_dir("artifacts")).resolve()
    try:
        relative = Path(path).resolve().relative_to(root)
    except (ValueError, OSError):
        return None
    return relative.parts[0] if len(relative.parts) > 1 else None


def uses(store: Any) -> dict[str, list[EntryUse]]:
    """Cache key -> the runs whose recorded artifacts lie in that entry, newest first."""
    from kiln_lab.core.store import pid_alive

    root = cache_dir("artifacts").resolve()
    found: dict[str, list[EntryUse]] = {}
    for record in store.runs():
        active = not record.finished and (record.pid is None or pid_alive(record.pid))
        use = EntryUse(
            record.id,
            record.model,
            record.precision,
            record.profile,
            record.status,
            record.created,
            active,
        )
        keys = {entry_key(a["path"], root) for a in store.artifacts(record.id)}
        for key in keys - {None}:
            found.setdefault(str(key), []).append(use)
    return found


def active_since(store: Any) -> float | None:
    """When the oldest run still going started (None if none is)."""
    from kiln_lab.core.store import pid_alive

    starts = [
        r.created for r in store.runs() if not r.finished and (r.pid is None or pid_alive(r.pid))
    ]
    return min(starts) if starts else None


@dataclass(frozen=True)
class Pruned:
    """What ``prune`` did: entries removed, entries it had to keep, sizes before and after."""

    removed: tuple[CacheEntry, ...]
    kept_in_use: tuple[CacheEntry, ...]
    before: int
    after: int
    limit: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "removed": [e.key for e in self.removed],
            "freed_bytes": self.before - self.after,
            "kept_in_use": [e.key for e in self.kept_in_use],
            "size_before": self.before,
            "size_after": self.after,
            "limit": self.limit,
        }


def prune(limit: int, store: Any, *, now: float | None = None) -> Pruned:
    """Remove the least recently used entries until the cache holds at most ``limit``
    bytes, never one a running run uses.

    In use: an entry a run that is still going recorded an artifact in, and, while any
    run is going, every entry written or reused since it started (a run reuses or
    builds an entry a moment before it records it). Leftover temporary directories and
    incomplete entries go first; then complete ones, least recently used first (last
    written, reused, or recorded by a run).
    """
    now = time.time() if now is None else now
    items = entries()
    used = uses(store)
    since = active_since(store)
    before = total = sum(e.size for e in items)

    def in_use(entry: CacheEntry) -> bool:
        if entry.kind == "temporary":
            return now - entry.modified < TEMPORARY_GRACE_S
        if any(u.active for u in used.get(entry.key, ())):
            return True
        return since is not None and entry.modified >= since

    def last_used(entry: CacheEntry) -> float:
        return max([entry.modified, *(u.created for u in used.get(entry.key, ()))])

    order = sorted(items, key=lambda e: (e.complete, last_used(e)))
    removed, kept = [], []
    for entry in order:
        leftover = entry.kind == "temporary" and not in_use(entry)
        if not leftover and total <= limit:
            continue  # under the limit: only leftovers go
        if in_use(entry):
            kept.append(entry)
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(entry)
        total -= entry.size
    return Pruned(tuple(removed), tuple(kept), before, total, limit)


def size_warning(limit: int | None = None) -> str | None:
    """A sentence for the app when the cache is over its limit; None when it is not (or
    when the cache or the settings cannot be read: a warning must never stop the app)."""
    from kiln_lab.core.errors import KilnError
    from kiln_lab.core.settings import cache_max_bytes

    try:
        limit = cache_max_bytes() if limit is None else limit
        items = entries()
    except (KilnError, OSError):
        return None
    total = sum(e.size for e in items)
    if total <= limit:
        return None
    return (
        f"The artifact cache holds {total / 1e9:.2f} GB in {len(items)} entries, over its "
        f"{limit / 1e9:.2f} GB limit: `kiln cache prune` removes the least recently used "
        "(never one a running run uses); the limit is cache_max_size in KILN_HOME/config.yaml "
        "or KILN_CACHE_MAX_SIZE"
    )
