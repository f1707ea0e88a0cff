"""Graph optimisation: ONNX Runtime's transformer fusion, cached like every artifact.

Fusion (EmbedLayerNormalization, Attention, SkipLayerNormalization, BiasGelu) did not
speed up fp32 on these CPUs by itself, but it is what lets dynamic int8 use
QAttention (bert-base, seq 128, batch 32 on 2 cores: fused dynamic int8 33.4 samples/s
against 15.0 for ONNX Runtime fp32), so profiles ask for it per target. The fused-op
counts are logged: a graph that did not fuse is the first thing to check when int8 is
slow.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kiln_lab.core.export import build_entry, cache_key, file_sha256

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

    def build(work: Path) -> dict[str, Any]:
        from onnxruntime.transformers import optimizer
        from onnxruntime.transformers.fusion_options import FusionOptions

        model = optimizer.optimize_model(
            str(onnx_path),
            model_type="bert",
            num_heads=num_heads,
            hidden_size=hidden_size,
            optimization_options=FusionOptions("bert"),
            opt_level=0,
        )
        stats = model.get_fused_operator_statistics()
        model.save_model_to_file(str(work / "model.onnx"))
        return {"fused": {op: int(stats.get(op, 0)) for op in FUSED_OPS if stats.get(op)}}

    path, meta, reused = build_entry(
        key,
        build,
        what="the fused graph",
        failure="graph fusion failed",
        hint="set `optimize: {fusion: false}` in the profile to run the unfused graph",
        source=onnx_path,
        needs=("fused",),
    )
    counts = meta["fused"]
    if not reused:
        log.info(
            "fused graph: %s",
            ", ".join(f"{op} x{n}" for op, n in counts.items()) or "nothing fused",
        )
    return path, counts, reused


def model_shape(config: Any) -> tuple[int, int]:
    """(num_heads, hidden_size) from a transformers config, for the fusion passes."""
    return int(config.num_attention_heads), int(config.hidden_size)


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

    def build(work: Path) -> dict[str, Any]:
        before = len(onnx.load(str(onnx_path), load_external_data=False).graph.node)
        model = onnxslim.slim(str(onnx_path))
        onnx.save(model, str(work / "model.onnx"))
        return {"nodes": {"before": before, "after": len(model.graph.node)}}

    path, meta, reused = build_entry(
        key,
        build,
        what="a simplified graph",
        failure="graph simplification failed",
        hint="set `optimize: {simplify: false}` in the profile",
        source=onnx_path,
        needs=("nodes",),
    )
    nodes = meta["nodes"]
    if not reused:
        log.info("simplified graph: %d -> %d nodes", nodes["before"], nodes["after"])
    return path, nodes, reused
