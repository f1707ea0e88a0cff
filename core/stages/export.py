"""The export stage: the portable graphs the runtime's compile step reads.

ONNX for ONNX Runtime, OpenVINO and most vendor compilers; TorchScript for the
TorchScript runtime and compilers that read it (VastAI's ``vamc``). Exports are cached
by a hash of the weights and the export settings, so re-running a precision reuses them.
"""

from __future__ import annotations

from kiln_lab.core.events import ArtifactWritten
from kiln_lab.core.runtimes import Graphs
from kiln_lab.core.stages.context import StageContext
from kiln_lab.core.stages.load import Loaded
from kiln_lab.core.stages.resolve import Resolved


def run(ctx: StageContext, resolved: Resolved, loaded: Loaded) -> Graphs:
    from kiln_lab.core.export import export_onnx, file_sha256

    runtime = resolved.runtime
    formats = runtime.exports(resolved.profile)
    if not formats:
        ctx.skip("export", "the profile runs the PyTorch model directly")
        return Graphs()
    model = loaded.model
    onnx = torchscript = None
    with ctx.stage("export") as summary:
        if "onnx" in formats:
            onnx, reused = export_onnx(
                model,
                input_names=model.family.input_names,
                weights_sha256=model.weights_sha256,
                static_shape=resolved.static_shape,
            )
            summary |= {"path": str(onnx), "cached": reused, "size_mb": onnx.stat().st_size / 1e6}
            ctx.emit(
                ArtifactWritten(
                    "export",
                    "onnx",
                    str(onnx),
                    file_sha256(onnx),
                    onnx.stat().st_size,
                    {"cached": reused},
                )
            )
        if "torchscript" in formats:
            from kiln_lab.core.torchscript import export_torchscript

            torchscript, reused = export_torchscript(
                model.model,
                input_names=model.family.input_names,
                weights_sha256=model.weights_sha256,
                precision=runtime.export_precision(ctx.config.precision),
                static_shape=resolved.static_shape,
            )
            summary |= {"torchscript": str(torchscript), "torchscript_cached": reused}
            ctx.emit(
                ArtifactWritten(
                    "export",
                    "torchscript",
                    str(torchscript),
                    file_sha256(torchscript),
                    torchscript.stat().st_size,
                    {"cached": reused},
                )
            )
    return Graphs(onnx=onnx, torchscript=torchscript)
