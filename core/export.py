"""Export a PyTorch model to ONNX, cached by a content hash of everything it depends on.

The TorchScript-based exporter (``dynamo=False``) on an eager-attention model is the
one whose graph ONNX Runtime's transformer optimizer can fuse (with the defaults,
attention is left unfused and runs 5-20% slower), so that is the exporter used. Batch
and sequence axes are dynamic unless a profile asks for static shapes. Every export
passes the ONNX checker before it enters the cache.

Cache entries (here, and the fused, int8 and fp16 graphs built from them) are built in
a temporary directory and renamed into place whole, so a full disk or a killed worker
never leaves half an entry; each records its model's sha256, checked on reuse, so a
damaged entry is rebuilt instead of failing the run.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kiln_lab.core.errors import DiskFull, ExportError, KilnError
from kiln_lab.core.paths import cache_dir

log = logging.getLogger(__name__)

OPSET = 17
EXPORT_VERSION = 1
"""Bump when the export procedure changes, so old cache entries are not reused."""


def cache_key(**inputs: Any) -> str:
    """A stable hash of an artifact's inputs (weights hash, options, tool versions)."""
    blob = json.dumps(inputs, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- cache entries: reused only when intact, published whole, never left half-written ---


def entry_dir(key: str) -> Path:
    """Where the cache entry ``key`` lives (not created: it appears whole, when done)."""
    return cache_dir("artifacts") / key


def reuse_entry(
    target: Path, needs: Sequence[str] = (), model_file: str = "model.onnx"
) -> dict[str, Any] | None:
    """The ``meta.json`` of an intact entry, else None; a damaged entry is removed.

    Damaged: ``meta.json`` unreadable or lacking ``needs``, or ``model_file`` no longer
    matching the sha256 recorded when it was built (a disk error, a stray write). The
    caller then builds the entry again, so a run never fails on a corrupt cache.
    """
    model, meta_path = target / model_file, target / "meta.json"
    if not (model.is_file() and meta_path.is_file()):
        return None
    problem = None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta, problem = None, "its meta.json cannot be read"
    if meta is not None:
        if not isinstance(meta, dict) or any(k not in meta for k in needs):
            problem = "its meta.json is incomplete"
        elif meta.get("sha256") and file_sha256(model) != meta["sha256"]:
            problem = f"{model_file} no longer matches the sha256 recorded when it was built"
    if problem is None:
        return meta
    log.warning("cache entry %s is damaged (%s): building it again", target, problem)
    shutil.rmtree(target, ignore_errors=True)
    return None


def new_workdir(prefix: str, what: str) -> Path:
    """A temporary directory beside the cache entries (same disk, so publishing is a rename)."""
    root = cache_dir("artifacts")
    try:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    except OSError as exc:
        raise disk_full(exc, what, root) or ExportError(
            f"cannot write to the artifact cache: {exc.strerror or exc}",
            path=root,
            hint="check the directory's permissions, or set KILN_HOME to a writable directory",
        ) from exc


def write_meta(
    workdir: Path, meta: dict[str, Any], model_file: str = "model.onnx"
) -> dict[str, Any]:
    """Record the model's sha256 (checked on every reuse) and write ``meta.json``."""
    meta = {**meta, "sha256": file_sha256(workdir / model_file)}
    (workdir / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return meta


def publish_entry(workdir: Path, target: Path, model_file: str = "model.onnx") -> None:
    """Move a finished entry into place in one rename: it is there whole, or not at all."""
    if target.exists():
        if reuse_entry(target, model_file=model_file) is not None:
            log.info("another run built %s meanwhile; using it", target)
            return
        shutil.rmtree(target, ignore_errors=True)  # an incomplete leftover
    try:
        os.replace(workdir, target)
    except OSError as exc:
        raced = exc.errno in (errno.ENOTEMPTY, errno.EEXIST)
        if raced and reuse_entry(target, model_file=model_file) is not None:
            log.info("another run built %s meanwhile; using it", target)
            return
        raise


def build_entry(
    key: str,
    build: Callable[[Path], dict[str, Any]],
    *,
    what: str,
    failure: str,
    hint: str,
    source: Path | None = None,
    needs: Sequence[str] = (),
    model_file: str = "model.onnx",
) -> tuple[Path, dict[str, Any], bool]:
    """Reuse the intact cache entry ``key``, or build it; returns ``(path, meta, reused)``.

    ``build(workdir)`` writes ``model_file`` into a fresh work directory and returns the
    extra ``meta.json`` fields. The entry is then published in one rename, so it is there
    whole or not at all; a full disk becomes ``DiskFull``, any other failure
    ``ExportError`` with ``failure`` and ``hint``. Every artifact writer goes through here.
    """
    target = entry_dir(key)
    path = target / model_file
    meta = reuse_entry(target, needs=needs, model_file=model_file)
    if meta is not None:
        log.info("reusing cached %s %s", what, path)
        with contextlib.suppress(OSError):  # a read-only cache is still usable
            os.utime(target / "meta.json")  # last used: `kiln cache prune` keeps it longer
        return path, meta, True
    work = new_workdir(f".{key[:8]}-", what)
    try:
        meta = write_meta(work, {"key": key, **build(work)}, model_file=model_file)
        publish_entry(work, target, model_file=model_file)
    except KilnError:
        raise
    except Exception as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        raise disk_full(exc, what, target.parent) or ExportError(
            f"{failure}: {first}", path=source, hint=hint
        ) from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path, meta, False


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_full(exc: BaseException, what: str, where: Path) -> KilnError | None:
    """A clear error if ``exc`` (or what caused it) is a full disk or an exhausted quota."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    if not any(
        (isinstance(e, OSError) and e.errno in DISK_FULL) or "No space left on device" in str(e)
        for e in seen
    ):
        return None
    try:
        free = f"{shutil.disk_usage(where).free / 1e9:.2f} GB free there now"
    except OSError:
        free = "free space unknown"
    return DiskFull(
        f"disk full while writing {what} to {where} ({free}); nothing half-written was left behind",
        path=where,
        hint="free space on that disk (`kiln cache clear` removes cached artifacts), or set "
        "KILN_HOME to a directory on a larger disk, then run again",
    )


def write_atomically(path: Path, text: str) -> None:
    """Write a small file (a report, an override) whole or not at all.

    The text goes to a hidden temporary file beside ``path`` that is renamed over it, so
    a full disk leaves the previous file (or none), never half of one.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise disk_full(exc, path.name, path.parent) or ExportError(
            f"cannot write {path}: {exc.strerror or exc}",
            path=path.parent,
            hint="check that the directory (KILN_HOME) is writable",
        ) from exc


def _dummy_inputs(input_names: tuple[str, ...], batch: int, seq_len: int) -> dict[str, Any]:
    import torch

    ids = torch.full((batch, seq_len), 5, dtype=torch.long)
    feeds = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if "token_type_ids" in input_names:
        feeds["token_type_ids"] = torch.zeros_like(ids)
    return feeds


def export_onnx(
    model: Any,
    *,
    input_names: tuple[str, ...],
    weights_sha256: str,
    static_shape: tuple[int, int] | None = None,
) -> tuple[Path, bool]:
    """Export (or reuse) an ONNX graph; returns ``(path, reused_from_cache)``.

    ``model`` is a PyTorch model, or a ``LoadedModel``, whose PyTorch model (and torch
    itself) is then built only on a cache miss: the key needs the config alone.
    """
    from importlib.metadata import version

    lazy = hasattr(model, "model_built")
    key = cache_key(
        kind="onnx-export",
        version=EXPORT_VERSION,
        weights=weights_sha256,
        inputs=input_names,
        static=static_shape,
        opset=OPSET,
        torch=version("torch"),
        onnx=version("onnx"),
        arch=model.config.to_json_string(use_diff=False),
    )
    seq_cls = model.card.task != "token-classification" if lazy else _is_seq_cls(model)
    batch, seq_len = static_shape or (2, 16)
    dynamic_axes = None
    if static_shape is None:
        axes = {0: "batch", 1: "sequence"}
        dynamic_axes = {name: axes for name in input_names}
        dynamic_axes["logits"] = {0: "batch"} if seq_cls else axes

    def build(work: Path) -> dict[str, Any]:
        import onnx
        import torch

        module = model.model if lazy else model
        dummy = _dummy_inputs(input_names, batch, seq_len)
        log.info(
            "exporting to ONNX (opset %d, %s shapes)",
            OPSET,
            "static" if static_shape else "dynamic",
        )
        with torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter is chosen on purpose (its graphs fuse); silence its
            # deprecation notice and the tracer's notes about constant Python values.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message="Exporting aten::index")
            torch.onnx.export(
                module,
                (),
                str(work / "model.onnx"),
                kwargs=dummy,
                input_names=list(input_names),
                output_names=["logits"],
                dynamic_axes=dynamic_axes,
                opset_version=OPSET,
                dynamo=False,
                do_constant_folding=True,
            )
        onnx.checker.check_model(str(work / "model.onnx"))
        return {"inputs": list(input_names), "static_shape": static_shape, "opset": OPSET}

    path, _, reused = build_entry(
        key,
        build,
        what="the ONNX export",
        failure="ONNX export failed",
        hint="run with --debug for the full trace; check that the model's family matches its card",
    )
    if not reused:
        log.info("ONNX graph written: %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return path, reused


def _is_seq_cls(model: Any) -> bool:
    return type(model).__name__.endswith("ForSequenceClassification")
