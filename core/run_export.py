"""Taking a run's build away: its artifacts copied out of ``KILN_HOME`` with a manifest.

A vendor compiler, another machine or a colleague needs the files a run built (the ONNX
graphs, the int8 or fp16 graph, a compiled model, the keep-float list, the report),
not a cache directory named by a hash. ``export_run`` copies each recorded artifact
into a folder named after what it is, checks every file against the sha256 the run
recorded, and writes ``manifest.json``: each file's sha256 and size, and the model,
precision, profile, dataset and versions that built it. The copy is made in a
temporary folder renamed into place, so the destination is whole or absent.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

from kiln_lab.core.cache import entry_key
from kiln_lab.core.errors import ConfigError, ExportError
from kiln_lab.core.export import disk_full, file_sha256

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


def _sources(artifact: dict[str, Any]) -> list[tuple[Path, str]]:
    """The files to copy for one artifact, each with its path inside the artifact's folder.

    An artifact inside a cache entry brings the whole entry (an ONNX graph's external
    weights file, the entry's meta.json); any other file comes alone, a directory whole.
    """
    path = Path(artifact["path"])
    if entry_key(path) is not None:
        entry = path.parent
        return [(f, str(f.relative_to(entry))) for f in sorted(entry.rglob("*")) if f.is_file()]
    if path.is_dir():
        inside = sorted(f for f in path.rglob("*") if f.is_file())
        return [(f, str(f.relative_to(path.parent))) for f in inside]
    return [(path, path.name)]


def _check_recorded(artifact: dict[str, Any], sha256: str) -> None:
    recorded = artifact.get("sha256") or ""
    if recorded and recorded != sha256:
        raise ExportError(
            f"{artifact['path']} changed since the run recorded it (sha256 {sha256[:12]}… "
            f"now, {recorded[:12]}… then)",
            path=artifact["path"],
            hint="run it again to rebuild the artifact, then export that run",
        )


def _destination(dest: Path) -> None:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ConfigError(
            f"{dest} exists and is not an empty directory",
            path=dest,
            hint="give --to a new or empty directory (nothing is overwritten)",
        )


def export_run(store: Any, run_id: str, dest: Path | str) -> dict[str, Any]:
    """Copy run ``run_id``'s artifacts into ``dest`` with ``manifest.json``; the manifest."""
    record = store.run(run_id)
    if not record.finished:
        raise ConfigError(
            f"run {record.id} is still {record.status}: its artifacts are not final",
            hint=f"wait for it (kiln attach {record.id}), then export it",
        )
    artifacts = store.artifacts(record.id)
    if not artifacts:
        raise ConfigError(
            f"run {record.id} recorded no artifacts ({record.status} before any was built)",
            hint="export a run that got past the export stage (`kiln runs` lists them)",
        )
    dest = Path(dest).expanduser().resolve()
    _destination(dest)
    gone = [a for a in artifacts if not Path(a["path"]).exists()]
    if gone:
        names = ", ".join(f"{a['name']} ({a['path']})" for a in gone)
        raise ExportError(
            f"run {record.id}'s artifacts are no longer all there: {names}",
            path=gone[0]["path"],
            hint="the cache was pruned or cleared since; run it again with the same options "
            "(they rebuild from what is still cached), then export the new run",
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = dest.parent / f".{dest.name}.export-tmp"
    shutil.rmtree(work, ignore_errors=True)
    files: list[dict[str, Any]] = []
    try:
        work.mkdir()
        for artifact in artifacts:
            folder = Path(artifact["name"])
            for source, inside in _sources(artifact):
                relative = folder / inside
                target = work / relative
                if target.exists():
                    continue  # two artifacts of one name (int8-override) share a folder
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
                sha256 = file_sha256(target)
                if source == Path(artifact["path"]):
                    _check_recorded(artifact, sha256)
                files.append(
                    {
                        "path": str(relative),
                        "artifact": artifact["name"],
                        "stage": artifact["stage"],
                        "sha256": sha256,
                        "size": target.stat().st_size,
                        "source": str(source),
                    }
                )
        manifest = _manifest(record, files)
        (work / MANIFEST).write_text(
            json.dumps(manifest, indent=2, ensure_ascii=False, default=str), encoding="utf-8"
        )
        if dest.exists():
            dest.rmdir()  # empty, checked above
        work.rename(dest)
    except OSError as exc:
        raise disk_full(exc, "the exported artifacts", dest.parent) or ExportError(
            f"cannot copy the artifacts to {dest}: {exc.strerror or exc}",
            path=dest,
            hint="check that the directory is writable",
        ) from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return manifest


def _manifest(record: Any, files: list[dict[str, Any]]) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    result = record.result or {}
    try:
        kiln = version("kiln_lab")
    except PackageNotFoundError:
        kiln = None
    return {
        "manifest_version": MANIFEST_VERSION,
        "run_id": record.id,
        "status": record.status,
        "model": result.get("model", record.model),
        "family": result.get("family"),
        "task": result.get("task"),
        "precision": record.precision,
        "profile": record.profile,
        "runtime": result.get("runtime"),
        "dataset": result.get("dataset", record.dataset),
        "split": result.get("split"),
        "batch_size": result.get("batch_size"),
        "seq_len": result.get("seq_len"),
        "run_created": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
        "exported": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "exported_by_kiln": kiln,
        "versions": result.get("environment"),
        "files": files,
    }
