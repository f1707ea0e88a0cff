"""The export and compile steps per runtime: a small registry of builders.

``core.stages.export`` asks :func:`export_formats` what to export for a profile, and
``core.stages.compile_model`` calls :func:`build` with the run state. Each builder
turns the exported (and maybe optimised / quantised) model into a ``CompiledModel``
at the run's precision: PyTorch eager, TorchScript, ONNX Runtime on CPU / CUDA /
TensorRT, OpenVINO, or an external toolchain whose compile command runs for real.
:func:`benchmark_external` is the benchmark stage's path for external profiles.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from kiln_lab.core.errors import ConfigError
from kiln_lab.core.events import ArtifactWritten, MetricSampled, ProgressAdvanced
from kiln_lab.core.paths import cache_dir
from kiln_lab.core.runtimes import CompiledModel, FixedShapeModel

log = logging.getLogger(__name__)

Builder = Callable[[Any, Any], CompiledModel]


def export_formats(profile: Any) -> tuple[str, ...]:
    """Which portable graphs a profile's compile step reads: ``onnx``, ``torchscript``."""
    if profile.runtime == "torch":
        return ()
    if profile.runtime == "torchscript":
        return ("torchscript",)
    if profile.runtime == "external":
        return profile.toolchain.model_inputs()
    return ("onnx",)


def static_shape(state: Any) -> tuple[int, int] | None:
    return (state.batch_size, state.seq_len) if state.profile.static_shapes else None


def _threads(profile: Any) -> tuple[int | None, int | None]:
    return profile.defaults.intra_op_threads, profile.defaults.inter_op_threads


def _fixed(state: Any, model: CompiledModel) -> CompiledModel:
    shape = static_shape(state)
    return FixedShapeModel(model, *shape) if shape else model


def build_torch(state: Any, run: Any) -> CompiledModel:
    from kiln_lab.core.runtimes import TorchModel

    intra, inter = _threads(state.profile)
    return TorchModel(
        state.loaded.model,
        state.loaded.family.input_names,
        intra,
        inter_op_threads=inter,
        precision=state.config.precision,
        device=state.profile.device,
    )


def build_torchscript(state: Any, run: Any) -> CompiledModel:
    from kiln_lab.core.runtimes import TorchScriptModel

    intra, inter = _threads(state.profile)
    return _fixed(
        state,
        TorchScriptModel(
            state.torchscript_path,
            state.loaded.family.input_names,
            threads=intra,
            inter_op_threads=inter,
            precision=state.config.precision,
            device=state.profile.device,
        ),
    )


def ort_providers(
    profile: Any,
    precision: str,
    input_names: tuple[str, ...] = (),
    max_shape: tuple[int, int] | None = None,
) -> list[Any]:
    """Provider list with options: TensorRT caches its engines and builds fp16 itself.

    TensorRT gets one optimisation profile from 1x1 up to the run's batch x seq_len, so
    length-bucketed batches reuse one engine instead of building one per new shape.
    """
    device_id = int(os.environ.get("KILN_DEVICE_ID", "0"))
    shapes: dict[str, str] = {}
    if input_names and max_shape:
        batch, seq_len = max_shape
        largest = ",".join(f"{n}:{batch}x{seq_len}" for n in input_names)
        shapes = {
            "trt_profile_min_shapes": ",".join(f"{n}:1x1" for n in input_names),
            "trt_profile_max_shapes": largest,
            "trt_profile_opt_shapes": largest,
        }
    specs: list[Any] = []
    for name in profile.execution_providers or ("CPUExecutionProvider",):
        if name == "TensorrtExecutionProvider":
            specs.append(
                (
                    name,
                    {
                        "device_id": device_id,
                        "trt_fp16_enable": precision == "fp16",
                        "trt_int8_enable": False,
                        "trt_engine_cache_enable": True,
                        "trt_engine_cache_path": str(cache_dir("tensorrt-engines")),
                        **shapes,
                    },
                )
            )
        elif name == "CUDAExecutionProvider":
            specs.append((name, {"device_id": device_id}))
        else:
            specs.append(name)
    return specs


def build_onnxruntime(state: Any, run: Any) -> CompiledModel:
    from kiln_lab.core.runtimes import OnnxRuntimeModel

    profile, precision = state.profile, state.config.precision
    path = state.model_path or state.fused_path or state.onnx_path
    tensorrt = "TensorrtExecutionProvider" in profile.execution_providers
    # fp16 graphs come from the quantize stage (core.precision.half); TensorRT builds fp16
    # itself from the fp32 graph (trt_fp16_enable).
    if precision == "bf16" or (precision == "fp16" and not tensorrt and not state.model_path):
        raise ConfigError(f"ONNX Runtime here builds fp32, fp16 (GPU) and int8, not {precision}")
    intra, inter = _threads(profile)
    return _fixed(
        state,
        OnnxRuntimeModel(
            path,
            providers=ort_providers(
                profile,
                precision,
                tuple(state.loaded.family.input_names),
                (state.batch_size, state.seq_len),
            ),
            intra_op_threads=intra,
            inter_op_threads=inter,
        ),
    )


def build_openvino(state: Any, run: Any) -> CompiledModel:
    from kiln_lab.core.runtime_openvino import OpenVINOModel

    profile = state.profile
    return _fixed(
        state,
        OpenVINOModel(
            state.model_path or state.onnx_path,
            precision=state.config.precision,
            threads=profile.defaults.intra_op_threads,
            instances=profile.defaults.instances,
            performance_hint=profile.openvino.performance_hint,
            static_shape=static_shape(state),
        ),
    )


def tool_context(state: Any, batch_size: int | None = None, seq_len: int | None = None) -> Any:
    """The values an external profile's command lines are filled in with, for this run."""
    from kiln_lab.core.toolchain import ToolContext

    config = state.loaded.model.config
    profile = state.profile
    return ToolContext(
        precision=state.config.precision,
        batch_size=batch_size or state.batch_size,
        seq_len=seq_len or state.seq_len,
        input_names=tuple(state.loaded.family.input_names),
        model_name=state.card.name,
        num_heads=int(config.num_attention_heads),
        hidden_size=int(config.hidden_size),
        onnx=state.onnx_path,
        torchscript=getattr(state, "torchscript_path", None),
        calibration=lambda: calibration_samples(state, seq_len or state.seq_len),
        threads=profile.defaults.intra_op_threads,
        instances=profile.defaults.instances,
        processes=profile.defaults.processes,
    )


def calibration_samples(state: Any, seq_len: int) -> list[dict[str, np.ndarray]]:
    """The profile's calibration count of train-split samples, each padded to ``seq_len``."""
    split = state.dataset.split("train") if "train" in state.dataset.splits else state.split
    count = state.config.calibration_samples or state.profile.int8.calibration_samples
    encoder = dataclasses.replace(state.encoder, padding="fixed", seq_len=seq_len)
    samples = []
    for batch, _ in encoder.encode_all(split.examples[:count], 1):
        samples.append({name: array[0] for name, array in batch.arrays.items()})
    log.info("calibration: %d samples of %s/%s", len(samples), state.dataset.name, split.name)
    return samples


def build_external(state: Any, run: Any) -> CompiledModel:
    from kiln_lab.core.runtimes import ToolOnlyModel, load_artifact
    from kiln_lab.core.toolchain import compile_with_tool

    profile = state.profile
    result = compile_with_tool(profile, tool_context(state), cancelled=run.cancelled)
    state.model_path = result.artifact
    state.result["toolchain"] = {
        "compile": {
            "command": result.argv,
            "cached": result.cached,
            "duration_s": round(result.duration_s, 3),
            "artifact": str(result.artifact),
        }
    }
    for path in result.outputs:
        kind = "compiled" if path == result.artifact else "compile-output"
        _artifact(run, kind, path, {"cached": result.cached, "tool": Path(result.argv[0]).name})
    settings = {
        "runtime": "external",
        "tool": Path(result.argv[0]).name,
        "threads": profile.defaults.intra_op_threads or "tool default",
        "instances": profile.defaults.instances,
        "processes": profile.defaults.processes,
    }
    evaluate_with = profile.toolchain.evaluate_with
    if evaluate_with == "none":
        return ToolOnlyModel(result.artifact, profile.name, settings)
    model = load_artifact(
        evaluate_with,
        result.artifact,
        threads=profile.defaults.intra_op_threads,
        input_names=tuple(state.loaded.family.input_names),
    )
    model.description = f"{profile.name}: {model.description}"
    return _fixed(state, model)


def _artifact(run: Any, kind: str, path: Path, meta: dict[str, Any]) -> None:
    run.emit(ArtifactWritten(run_stage(run), kind, str(path), "", path.stat().st_size, meta))


def run_stage(run: Any) -> str:
    from kiln_lab.core.pipeline import current_stage

    return current_stage.get() or "compile"


BUILDERS: dict[str, Builder] = {
    "torch": build_torch,
    "torchscript": build_torchscript,
    "onnxruntime": build_onnxruntime,
    "openvino": build_openvino,
    "external": build_external,
}


def pin_cpus(profile: Any) -> None:
    """Apply the profile's CPU affinity to this process (tools it starts inherit it)."""
    wanted = set(profile.defaults.cpu_affinity)
    if not wanted:
        return
    if not hasattr(os, "sched_setaffinity"):
        raise ConfigError("this platform cannot pin CPUs", path=profile.profile_path)
    allowed = os.sched_getaffinity(0)
    if not wanted <= allowed:
        raise ConfigError(
            f"profile '{profile.name}' pins CPUs {sorted(wanted - allowed)} that this process "
            f"may not use (allowed: {sorted(allowed)})",
            path=profile.profile_path,
            hint="edit defaults.cpu_affinity",
        )
    os.sched_setaffinity(0, wanted)
    log.info("pinned to CPUs %s", sorted(wanted))


def build(state: Any, run: Any) -> CompiledModel:
    pin_cpus(state.profile)
    try:
        builder = BUILDERS[state.profile.runtime]
    except KeyError:
        raise ConfigError(
            f"no builder for runtime {state.profile.runtime!r}",
            hint=f"known runtimes: {', '.join(sorted(BUILDERS))}",
        ) from None
    return builder(state, run)


def benchmark_external(state: Any, run: Any) -> list[dict[str, Any]]:
    """The benchmark stage for ``runtime: external``: the tool's own figures per cell.

    The grid is the run's (``--batch-sizes`` x ``--seq-lens``), else the profile's
    defaults, else the run's one shape. A static-shape toolchain is recompiled per cell
    (cached), as the vendor guides do for their batch x seq-len tables. Emits the same
    ``MetricSampled('benchmark', 'throughput', ...)`` and progress events as the
    in-process benchmark; the caller wraps it in ``run.stage('benchmark')``.
    """
    from kiln_lab.core.export import export_onnx
    from kiln_lab.core.toolchain import compile_with_tool, run_external_benchmark

    cfg, profile = state.config, state.profile
    batch_sizes = tuple(
        cfg.bench_batch_sizes or profile.defaults.batch_sizes or (state.batch_size,)
    )
    seq_lens = tuple(cfg.bench_seq_lens or profile.defaults.seq_lens or (state.seq_len,))
    total = len(batch_sizes) * len(seq_lens)
    cells: list[dict[str, Any]] = []
    for batch in batch_sizes:
        for seq_len in seq_lens:
            artifact, output_dir = state.model_path, None
            if profile.static_shapes and (batch, seq_len) != (state.batch_size, state.seq_len):
                saved = state.onnx_path
                if "onnx" in export_formats(profile):
                    state.onnx_path, _ = export_onnx(
                        state.loaded.model,
                        input_names=state.loaded.family.input_names,
                        weights_sha256=state.loaded.weights_sha256,
                        static_shape=(batch, seq_len),
                    )
                compiled = compile_with_tool(
                    profile, tool_context(state, batch, seq_len), cancelled=run.cancelled
                )
                state.onnx_path = saved
                artifact, output_dir = compiled.artifact, compiled.output_dir
            figures = run_external_benchmark(
                profile,
                artifact,
                batch_size=batch,
                seq_len=seq_len,
                precision=cfg.precision,
                input_names=tuple(state.loaded.family.input_names),
                model_name=state.card.name,
                output_dir=output_dir,
                iterations=cfg.bench_iterations,
                warmup=cfg.bench_warmup,
                instances=cfg.instances,
                processes=cfg.processes,
                cancelled=run.cancelled,
            )
            latency = {
                k.removeprefix("latency_"): v for k, v in figures.items() if k.startswith("latency")
            }
            cell = {
                "batch_size": batch,
                "seq_len": seq_len,
                "samples_per_s": figures["samples_per_s"],
                "samples_per_s_trials": [figures["samples_per_s"]],
                "spread_pct": 0.0,
                "latency": latency,
                "source": "tool",
                "command": figures["command"],
            }
            cells.append(cell)
            run.emit(ProgressAdvanced("benchmark", len(cells), total, "cells"))
            run.emit(
                MetricSampled(
                    "benchmark",
                    "throughput",
                    {
                        "batch_size": batch,
                        "seq_len": seq_len,
                        "samples_per_s": figures["samples_per_s"],
                        **latency,
                    },
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
    state.result["benchmark"] = {
        "plan": {"batch_sizes": batch_sizes, "seq_lens": seq_lens, "source": "external tool"},
        "cells": cells,
    }
    return cells
