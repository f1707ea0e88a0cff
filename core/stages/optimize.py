"""The optimize stage: graph rewriting before any precision change.

Simplification (onnxslim, as Ascend's recipe runs onnxsim before ``atc``) where the
profile asks for it, and ONNX Runtime's transformer fusions (fused Attention,
LayerNorm, GELU) for runtimes that gain from them.
"""

from __future__ import annotations

import dataclasses

from kiln_lab.core.events import ArtifactWritten
from kiln_lab.core.runtimes import Graphs
from kiln_lab.core.stages.context import StageContext
from kiln_lab.core.stages.load import Loaded
from kiln_lab.core.stages.resolve import Resolved


def run(ctx: StageContext, resolved: Resolved, loaded: Loaded, graphs: Graphs) -> Graphs:
    from kiln_lab.core.optimize import fuse_transformer, model_shape, simplify

    profile = resolved.profile
    wants_fusion = profile.optimize.fusion and resolved.runtime.fuses_attention
    if graphs.onnx is None or not (profile.optimize.simplify or wants_fusion):
        reason = (
            "the profile's runtime compiles the model itself"
            if graphs.onnx is None
            else f"profile '{profile.name}' asks for no graph rewriting"
        )
        ctx.skip("optimize", reason)
        return graphs
    onnx, fused = graphs.onnx, None
    with ctx.stage("optimize") as summary:
        if profile.optimize.simplify:
            # Everything downstream (fusion, int8, vendor compilers) starts from this graph.
            onnx, nodes, cached = simplify(onnx)
            summary["simplified"] = {"nodes": nodes, "cached": cached, "path": str(onnx)}
            ctx.emit(
                ArtifactWritten(
                    "optimize",
                    "onnx-simplified",
                    str(onnx),
                    "",
                    onnx.stat().st_size,
                    {"nodes": nodes, "cached": cached},
                )
            )
        if wants_fusion:
            heads, hidden = model_shape(loaded.model.config)
            fused, counts, cached = fuse_transformer(onnx, num_heads=heads, hidden_size=hidden)
            summary |= {"path": str(fused), "fused": counts, "cached": cached}
            ctx.emit(
                ArtifactWritten(
                    "optimize",
                    "onnx-fused",
                    str(fused),
                    "",
                    fused.stat().st_size,
                    {"fused": counts, "cached": cached},
                )
            )
    return dataclasses.replace(graphs, onnx=onnx, fused=fused)
