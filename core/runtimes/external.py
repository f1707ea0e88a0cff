"""External vendor toolchains: a profile's compile and benchmark command lines, run for real.

The compile command (``atc``, ``vamc``, MagicMind's builder, ``polygraphy``...) turns
Kiln's export into the vendor's artifact; where a local runtime can read that artifact
(``toolchain.evaluate_with``) Kiln opens it for parity and accuracy, else the artifact
is a :class:`ToolOnlyModel` and its speed comes from the profile's benchmark command.
How commands are filled in and run lives in :mod:`kiln_lab.core.toolchain` and
:mod:`kiln_lab.core.toolrun`; this module is the runtime the stages talk to.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from kiln_lab.core.errors import ConfigError, RuntimeFailure
from kiln_lab.core.events import ArtifactWritten, BenchmarkCellMeasured, ProgressAdvanced
from kiln_lab.core.runconfig import PRECISIONS, RunConfig
from kiln_lab.core.runtimes.base import (
    Batch,
    BuildRequest,
    Built,
    CompiledModel,
    Conversion,
    Runtime,
)
from kiln_lab.core.runtimes.onnxruntime import OnnxRuntimeRuntime
from kiln_lab.core.runtimes.openvino import OpenVINORuntime
from kiln_lab.core.runtimes.paddle import PaddleRuntime

if TYPE_CHECKING:
    from kiln_lab.core.profiles import Profile
    from kiln_lab.core.toolchain import ToolContext

log = logging.getLogger(__name__)

EVALUATORS: dict[str, Runtime] = {
    runtime.name: runtime for runtime in (OnnxRuntimeRuntime(), OpenVINORuntime(), PaddleRuntime())
}
"""The runtimes a profile's ``toolchain.evaluate_with`` may name to open the artifact."""


class ToolOnlyModel(CompiledModel):
    """An artifact only its vendor tool can execute (an Ascend .om, a VastAI module...)."""

    runs_locally = False

    def __init__(self, path: Path, profile_name: str, settings: dict[str, Any]) -> None:
        self.path = Path(path)
        self.profile_name = profile_name
        self._settings = settings
        self.description = f"{profile_name} artifact {self.path.name} (runs in its vendor tool)"

    def run(self, batch: Batch) -> np.ndarray:
        raise RuntimeFailure(
            f"profile '{self.profile_name}' builds an artifact that only its vendor tool can "
            "run; Kiln cannot compute logits from it here",
            path=self.path,
            hint="speed figures come from the profile's benchmark command; for accuracy set "
            "toolchain.evaluate_with when a local runtime can read the artifact",
        )

    def settings(self) -> dict[str, Any]:
        return dict(self._settings)


def tool_context(
    request: BuildRequest, batch_size: int | None = None, seq_len: int | None = None
) -> ToolContext:
    """The values an external profile's command lines are filled in with, for this build."""
    from kiln_lab.core.toolchain import ToolContext

    config = request.config
    profile = request.profile
    seq_len = seq_len or request.seq_len
    calibration = request.calibration
    return ToolContext(
        precision=request.precision,
        batch_size=batch_size or request.batch_size,
        seq_len=seq_len,
        input_names=request.input_names,
        model_name=request.model_name,
        num_heads=int(config.num_attention_heads),
        hidden_size=int(config.hidden_size),
        onnx=request.graphs.onnx,
        torchscript=request.graphs.torchscript,
        calibration=(lambda: calibration(seq_len)) if calibration else None,
        threads=profile.defaults.intra_op_threads,
        instances=profile.defaults.instances,
        processes=profile.defaults.processes,
    )


class ExternalRuntime(Runtime):
    name: ClassVar[str] = "external"
    precisions: ClassVar[frozenset[str]] = frozenset(PRECISIONS)
    """Whatever the vendor compiler builds; the profile lists what it offers."""

    def exports(self, profile: Profile) -> tuple[str, ...]:
        return profile.toolchain.model_inputs()

    def conversion(self, profile: Profile, precision: str) -> Conversion:
        found = super().conversion(profile, precision)
        if precision != "int8":
            return found
        # The guard's repair recompiles with chosen layers in float; a profile says why its
        # vendor's compiler has no documented way to be told which (no_float_repair).
        why = profile.int8.no_float_repair or (
            "the profile names no way to keep chosen layers in float in this vendor's compiler"
        )
        return Conversion(
            None,
            f"{found.reason}. Its int8 accuracy is measured through the tool but the accuracy "
            f"guard cannot repair it: {why}",
        )

    def build(self, request: BuildRequest) -> Built:
        from kiln_lab.core.toolchain import compile_with_tool

        profile = request.profile
        result = compile_with_tool(profile, tool_context(request), cancelled=request.cancelled)
        toolchain = {
            "compile": {
                "command": result.argv,
                "cached": result.cached,
                "duration_s": round(result.duration_s, 3),
                "artifact": str(result.artifact),
            }
        }
        tool = Path(result.argv[0]).name
        for path in result.outputs:
            kind = "compiled" if path == result.artifact else "compile-output"
            request.emit(
                ArtifactWritten(
                    request.stage,
                    kind,
                    str(path),
                    "",
                    path.stat().st_size,
                    {"cached": result.cached, "tool": tool},
                )
            )
        settings = {
            "runtime": "external",
            "tool": tool,
            "threads": profile.defaults.intra_op_threads or "tool default",
            "instances": profile.defaults.instances,
            "processes": profile.defaults.processes,
        }
        evaluate_with = profile.toolchain.evaluate_with
        if evaluate_with == "infer":
            from kiln_lab.core.runtimes.infer_tool import ToolInferModel

            config = request.config
            model: CompiledModel = ToolInferModel(
                profile,
                result.artifact,
                input_names=request.input_names,
                batch_size=request.batch_size,
                seq_len=request.seq_len,
                precision=request.precision,
                token_level=request.task == "token-classification",
                num_labels=int(config.num_labels),
                model_name=request.model_name,
                output_dir=result.output_dir,
                cancelled=request.cancelled,
            )
            return Built(model, result.artifact, toolchain)
        if evaluate_with == "none":
            model = ToolOnlyModel(result.artifact, profile.name, settings)
            return Built(model, result.artifact, toolchain)
        model = EVALUATORS[evaluate_with].open(
            result.artifact,
            threads=profile.defaults.intra_op_threads,
            input_names=request.input_names,
        )
        model.description = f"{profile.name}: {model.description}"
        return Built(request.fixed(model), result.artifact, toolchain)

    def benchmarks_with_tool(
        self, *, grid_requested: bool, evaluated: bool, model: CompiledModel
    ) -> bool:
        return grid_requested or not evaluated or not model.runs_locally

    def benchmark(
        self,
        request: BuildRequest,
        artifact: Path | None,
        config: RunConfig,
        weights_sha256: str,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The benchmark stage for external profiles: the tool's own figures per cell.

        The grid is the run's (``--batch-sizes`` x ``--seq-lens``), else the profile's
        defaults, else the run's one shape. A static-shape toolchain is recompiled per
        cell (cached), as the vendor guides do for their batch x seq-len tables.
        Returns the plan and the cells.
        """
        from kiln_lab.core.export import export_onnx
        from kiln_lab.core.toolchain import compile_with_tool, run_external_benchmark

        profile = request.profile
        defaults = profile.defaults
        batch_sizes = tuple(
            config.bench_batch_sizes or defaults.batch_sizes or (request.batch_size,)
        )
        seq_lens = tuple(config.bench_seq_lens or defaults.seq_lens or (request.seq_len,))
        total = len(batch_sizes) * len(seq_lens)
        cells: list[dict[str, Any]] = []
        for batch in batch_sizes:
            for seq_len in seq_lens:
                if artifact is None:
                    raise ConfigError("the external benchmark needs the compile stage's artifact")
                cell_artifact, output_dir = artifact, None
                if profile.static_shapes and (batch, seq_len) != (
                    request.batch_size,
                    request.seq_len,
                ):
                    graphs = request.graphs
                    if "onnx" in self.exports(profile):
                        onnx, _ = export_onnx(
                            request.reference,
                            input_names=request.input_names,
                            weights_sha256=weights_sha256,
                            static_shape=(batch, seq_len),
                        )
                        graphs = dataclasses.replace(graphs, onnx=onnx)
                    cell_request = dataclasses.replace(request, graphs=graphs)
                    compiled = compile_with_tool(
                        profile,
                        tool_context(cell_request, batch, seq_len),
                        cancelled=request.cancelled,
                    )
                    cell_artifact, output_dir = compiled.artifact, compiled.output_dir
                figures = run_external_benchmark(
                    profile,
                    cell_artifact,
                    batch_size=batch,
                    seq_len=seq_len,
                    precision=request.precision,
                    input_names=request.input_names,
                    model_name=request.model_name,
                    output_dir=output_dir,
                    iterations=config.bench_iterations,
                    warmup=config.bench_warmup,
                    instances=config.instances,
                    processes=config.processes,
                    cancelled=request.cancelled,
                )
                latency = {
                    k.removeprefix("latency_"): v
                    for k, v in figures.items()
                    if k.startswith("latency")
                }
                cells.append(
                    {
                        "batch_size": batch,
                        "seq_len": seq_len,
                        "samples_per_s": figures["samples_per_s"],
                        "samples_per_s_trials": [figures["samples_per_s"]],
                        "spread_pct": 0.0,
                        "latency": latency,
                        "source": "tool",
                        "command": figures["command"],
                    }
                )
                request.emit(ProgressAdvanced("benchmark", len(cells), total, "cells"))
                request.emit(
                    BenchmarkCellMeasured(
                        "benchmark",
                        batch,
                        seq_len,
                        figures["samples_per_s"],
                        latency,
                        source="tool",
                    )
                )
                log.info(
                    "batch %3d x seq %4d: %8.1f samples/s (from %s)%s",
                    batch,
                    seq_len,
                    figures["samples_per_s"],
                    Path(figures["command"][0]).name,
                    "".join(f", {k} {v:.2f}" for k, v in latency.items()),
                )
        plan = {"batch_sizes": batch_sizes, "seq_lens": seq_lens, "source": "external tool"}
        return plan, cells
