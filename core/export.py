"""Export a PyTorch model to ONNX, cached by a content hash of everything it depends on.

The TorchScript-based exporter (``dynamo=False``) on an eager-attention model is the
one whose graph ONNX Runtime's transformer optimizer can fuse (DESIGN.md), so that is
the exporter used. Batch and sequence axes are dynamic unless a profile asks for
static shapes. Every export passes the ONNX checker before it enters the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from core.errors import ExportError
from core.paths import cache_dir

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
    """Export (or reuse) an ONNX graph; returns ``(path, reused_from_cache)``."""
    import onnx
    import torch

    key = cache_key(
        kind="onnx-export",
        version=EXPORT_VERSION,
        weights=weights_sha256,
        inputs=input_names,
        static=static_shape,
        opset=OPSET,
        torch=torch.__version__,
        onnx=onnx.__version__,
        arch=model.config.to_json_string(use_diff=False),
    )
    target = cache_dir("artifacts", key)
    path = target / "model.onnx"
    if path.exists() and (target / "meta.json").exists():
        log.info("reusing cached ONNX export %s", path)
        return path, True
    batch, seq_len = static_shape or (2, 16)
    dummy = _dummy_inputs(input_names, batch, seq_len)
    dynamic_axes = None
    if static_shape is None:
        axes = {0: "batch", 1: "sequence"}
        dynamic_axes = {name: axes for name in input_names}
        dynamic_axes["logits"] = {0: "batch"} if _is_seq_cls(model) else axes
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
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
                model,
                (),
                str(tmp / "model.onnx"),
                kwargs=dummy,
                input_names=list(input_names),
                output_names=["logits"],
                dynamic_axes=dynamic_axes,
                opset_version=OPSET,
                dynamo=False,
                do_constant_folding=True,
            )
        onnx.checker.check_model(str(tmp / "model.onnx"))
        meta = {
            "key": key,
            "inputs": list(input_names),
            "static_shape": static_shape,
            "opset": OPSET,
            "sha256": file_sha256(tmp / "model.onnx"),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        # meta.json last: its presence is what marks the cache entry complete.
        os.replace(tmp / "model.onnx", path)
        os.replace(tmp / "meta.json", target / "meta.json")
    except Exception as exc:
        raise ExportError(
            f"ONNX export failed: {str(exc).splitlines()[0][:300]}",
            hint="run with --debug for the full trace; check that the model's family matches "
            "its card",
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("ONNX graph written: %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return path, False


def _is_seq_cls(model: Any) -> bool:
    return type(model).__name__.endswith("ForSequenceClassification")
