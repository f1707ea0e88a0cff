"""Graph optimisation: ONNX Runtime's transformer fusion, cached like every artifact.

Fusion (EmbedLayerNormalization, Attention, SkipLayerNormalization, BiasGelu) did not
speed up fp32 on these CPUs by itself, but it is what lets dynamic int8 use
QAttention (DESIGN.md), so profiles ask for it per target. The fused-op counts are
logged: a graph that did not fuse is the first thing to check when int8 is slow.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from core.errors import ExportError
from core.export import (
    cache_key,
    disk_full,
    entry_dir,
    file_sha256,
    new_workdir,
    publish_entry,
    reuse_entry,
    write_meta,
)

log = logging.getLogger(__name__)

OPTIMIZE_VERSION = 1
FUSED_OPS = (
    "EmbedLayerNormalization",
    "Attention",
    "SkipLayerNormalization",
    "BiasGelu",
    "Gelu",
    "FastGelu",
    "LayerNormalization",
)


def fuse_transformer(
    onnx_path: Path, *, num_heads: int, hidden_size: int
) -> tuple[Path, dict[str, int], bool]:
    """Fuse a BERT-family graph; returns ``(path, fused op counts, reused_from_cache)``."""
    import onnxruntime

    key = cache_key(
        kind="ort-fusion",
        version=OPTIMIZE_VERSION,
        source=file_sha256(onnx_path),
        heads=num_heads,
        hidden=hidden_size,
        ort=onnxruntime.__version__,
    )
    target = entry_dir(key)
    path = target / "model.onnx"
    meta = reuse_entry(target, needs=("fused",))
    if meta is not None:
        log.info("reusing cached fused graph %s", path)
        return path, meta["fused"], True
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    options = FusionOptions("bert")
    # A 2D 0/1 mask as the graph gets it from the tokenizer (what exporters emit).
    tmp = new_workdir(".fuse-", "the fused graph")
    try:
        model = optimizer.optimize_model(
            str(onnx_path),
            model_type="bert",
            num_heads=num_heads,
            hidden_size=hidden_size,
            optimization_options=options,
            opt_level=0,
        )
        stats = model.get_fused_operator_statistics()
        counts = {op: int(stats.get(op, 0)) for op in FUSED_OPS if stats.get(op)}
        model.save_model_to_file(str(tmp / "model.onnx"))
        write_meta(tmp, {"key": key, "fused": counts})
        publish_entry(tmp, target)
    except Exception as exc:
        raise disk_full(exc, "the fused graph", target.parent) or ExportError(
            f"graph fusion failed: {(str(exc).splitlines() or [type(exc).__name__])[0][:300]}",
            path=onnx_path,
            hint="set `optimize: {fusion: false}` in the profile to run the unfused graph",
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info(
        "fused graph: %s", ", ".join(f"{op} x{n}" for op, n in counts.items()) or "nothing fused"
    )
    return path, counts, False


def model_shape(model: Any) -> tuple[int, int]:
    """(num_heads, hidden_size) of a transformers model, for the fusion passes."""
    return int(model.config.num_attention_heads), int(model.config.hidden_size)


def simplify(onnx_path: Path) -> tuple[Path, dict[str, int], bool]:
    """onnxslim's simplified graph; returns ``(path, node counts before/after, cached)``."""
    import onnx
    import onnxslim

    key = cache_key(
        kind="onnxslim",
        version=OPTIMIZE_VERSION,
        source=file_sha256(onnx_path),
        onnxslim=onnxslim.__version__,
    )
    target = entry_dir(key)
    meta = reuse_entry(target, needs=("nodes",))
    if meta is not None:
        log.info("reusing cached simplified graph %s", target / "model.onnx")
        return target / "model.onnx", meta["nodes"], True
    work = new_workdir(".slim-", "a simplified graph")
    try:
        before = len(onnx.load(str(onnx_path), load_external_data=False).graph.node)
        model = onnxslim.slim(str(onnx_path))
        onnx.save(model, str(work / "model.onnx"))
        nodes = {"before": before, "after": len(model.graph.node)}
        write_meta(work, {"key": key, "nodes": nodes})
        publish_entry(work, target)
    except Exception as exc:
        raise disk_full(exc, "a simplified graph", target.parent) or ExportError(
            f"graph simplification failed: {str(exc).splitlines()[0][:300]}",
            path=onnx_path,
            hint="set `optimize: {simplify: false}` in the profile",
        ) from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("simplified graph: %d -> %d nodes", nodes["before"], nodes["after"])
    return target / "model.onnx", nodes, False
