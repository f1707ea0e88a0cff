"""The runtimes, one module each, in a registry keyed by the name profiles use.

A new runtime is one new module with a :class:`~kiln_lab.core.runtimes.base.Runtime`
subclass, plus its entry in :data:`RUNTIMES`. Importing this package is cheap: each
runtime imports its library (torch, onnxruntime, openvino, paddle) only when it builds
or opens a model.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from kiln_lab.core.errors import ConfigError
from kiln_lab.core.runtimes.base import (
    Batch,
    BuildRequest,
    Built,
    CompiledModel,
    Conversion,
    FixedShapeModel,
    Graphs,
    Runtime,
)
from kiln_lab.core.runtimes.external import ExternalRuntime
from kiln_lab.core.runtimes.onnxruntime import OnnxRuntimeRuntime
from kiln_lab.core.runtimes.openvino import OpenVINORuntime
from kiln_lab.core.runtimes.paddle import PaddleRuntime
from kiln_lab.core.runtimes.torch import TorchRuntime
from kiln_lab.core.runtimes.torchscript import TorchScriptRuntime

__all__ = [
    "RUNTIMES",
    "Batch",
    "BuildRequest",
    "Built",
    "CompiledModel",
    "Conversion",
    "FixedShapeModel",
    "Graphs",
    "Runtime",
    "get_runtime",
    "load_artifact",
]

RUNTIMES: MappingProxyType[str, Runtime] = MappingProxyType(
    {
        runtime.name: runtime
        for runtime in (
            TorchRuntime(),
            TorchScriptRuntime(),
            OnnxRuntimeRuntime(),
            OpenVINORuntime(),
            PaddleRuntime(),
            ExternalRuntime(),
        )
    }
)


def get_runtime(name: str) -> Runtime:
    try:
        return RUNTIMES[name]
    except KeyError:
        raise ConfigError(
            f"unknown runtime {name!r}", hint=f"known runtimes: {', '.join(sorted(RUNTIMES))}"
        ) from None


def load_artifact(
    runtime: str,
    path: Path,
    *,
    threads: int | None = None,
    input_names: tuple[str, ...] | None = None,
) -> CompiledModel:
    """A compiled file opened by the runtime that reads it (ONNX, OpenVINO, Paddle...)."""
    return get_runtime(runtime).open(path, threads=threads, input_names=input_names or ())
