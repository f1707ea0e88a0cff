"""OpenVINO runtime (the ``openvino`` package from PyPI) on the CPU.

The ONNX graph is read with its dynamic batch and sequence axes and compiled for the
CPU plugin. Precision is set explicitly with ``INFERENCE_PRECISION_HINT``: on CPUs with
AVX-512 BF16 or AMX, OpenVINO *defaults* to bf16, so an "fp32" run that left the hint
alone would quietly measure bf16. Streams come from the profile's instances; each
thread gets its own infer request, so several benchmark instances can share one model.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from kiln_lab.core.errors import ConfigError, RuntimeFailure
from kiln_lab.core.runtimes.base import (
    Batch,
    BuildRequest,
    Built,
    CompiledModel,
    Conversion,
    Graphs,
    Runtime,
    cpu_affinity,
)

if TYPE_CHECKING:
    from kiln_lab.core.profiles import Profile

log = logging.getLogger(__name__)

HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}


class OpenVINOModel(CompiledModel):
    def __init__(
        self,
        path: Path,
        *,
        precision: str = "fp32",
        threads: int | None = None,
        instances: int = 1,
        performance_hint: str = "LATENCY",
        static_shape: tuple[int, int] | None = None,
        device: str = "CPU",
    ) -> None:
        import openvino as ov

        if precision not in HINTS:
            raise ConfigError(
                f"OpenVINO builds {', '.join(HINTS)} here, not {precision}",
                hint="int8 on OpenVINO needs a quantized (QDQ) graph",
            )
        core = ov.Core()
        self.path = Path(path)
        self.precision = precision
        try:
            model = core.read_model(str(path))
            if static_shape is not None:
                model.reshape({port.get_any_name(): list(static_shape) for port in model.inputs})
            config: dict[str, Any] = {
                "INFERENCE_PRECISION_HINT": HINTS[precision],
                "PERFORMANCE_HINT": performance_hint,
            }
            if threads:
                config["INFERENCE_NUM_THREADS"] = threads
            if instances > 1:
                config["NUM_STREAMS"] = instances
            self.compiled = core.compile_model(model, device, config)
            self._model, self._config = model, config
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError subclasses
            raise RuntimeFailure(
                f"OpenVINO could not compile the model: {str(exc).strip().splitlines()[0][:300]}",
                path=path,
                hint="run with --debug for OpenVINO's full message",
            ) from exc
        self.input_names = tuple(port.get_any_name() for port in self.compiled.inputs)
        self._local = threading.local()
        self._device = device
        self._full_name = core.get_property(device, "FULL_DEVICE_NAME")
        self.description = f"OpenVINO {ov.__version__.split('-')[0]} {device} {precision}"

    def _request(self) -> Any:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        return request

    def run(self, batch: Batch) -> np.ndarray:
        feeds = {
            name: np.ascontiguousarray(batch[name], dtype=np.int64) for name in self.input_names
        }
        result = self._request().infer(feeds)
        return np.asarray(result[self.compiled.outputs[0]], dtype=np.float32)

    def op_breakdown(self, batches: Sequence[Batch]) -> dict[str, Any] | None:
        import openvino as ov

        from kiln_lab.core.op_profile import openvino_ops

        profiled = ov.Core().compile_model(
            self._model, self._device, {**self._config, "PERF_COUNT": True}
        )
        return openvino_ops(profiled, batches, self.input_names)

    def settings(self) -> dict[str, Any]:
        def read(name: str) -> Any:
            try:
                value = self.compiled.get_property(name)
            except Exception:  # noqa: BLE001 - a property this plugin does not report
                return None
            if hasattr(value, "get_type_name"):  # an element type: 'f32', 'bf16'
                return value.get_type_name()
            return value if isinstance(value, int | float | bool) else str(value)

        return {
            "runtime": "openvino",
            "device": f"{self._device} ({self._full_name})",
            "precision": self.precision,
            "inference_precision": read("INFERENCE_PRECISION_HINT"),
            "intra_op_threads": read("INFERENCE_NUM_THREADS"),
            "streams": read("NUM_STREAMS"),
            "performance_hint": read("PERFORMANCE_HINT"),
            "optimal_requests": read("OPTIMAL_NUMBER_OF_INFER_REQUESTS"),
            "cpu_affinity": cpu_affinity(),
        }


class OpenVINORuntime(Runtime):
    name: ClassVar[str] = "openvino"
    precisions: ClassVar[frozenset[str]] = frozenset((*HINTS, "int8"))

    def conversion(self, profile: Profile, precision: str) -> Conversion:
        if precision == "int8":
            return Conversion("nncf-int8", "NNCF post-training quantization to OpenVINO IR")
        return super().conversion(profile, precision)

    def require(self, profile: Profile, precision: str) -> None:
        if precision == "int8":
            from kiln_lab.core.quantize_nncf import nncf_version

            nncf_version()

    def conversion_source(self, profile: Profile, kind: str, graphs: Graphs) -> Path:
        """NNCF reads the plain export: OpenVINO fuses attention itself."""
        assert graphs.onnx is not None, "conversions start from the exported ONNX graph"
        return graphs.onnx

    def build(self, request: BuildRequest) -> Built:
        graphs, profile = request.graphs, request.profile
        path = graphs.converted or graphs.onnx
        if path is None:
            raise ConfigError("OpenVINO needs the export stage's ONNX graph")
        model = OpenVINOModel(
            path,
            # int8 comes as FakeQuantize nodes in the IR; what NNCF left in float runs f32.
            precision="fp32" if request.precision == "int8" else request.precision,
            threads=profile.defaults.intra_op_threads,
            instances=profile.defaults.instances,
            performance_hint=profile.openvino.performance_hint,
            static_shape=request.static_shape,
        )
        return Built(request.fixed(model))

    def open(
        self, path: Path, *, threads: int | None = None, input_names: tuple[str, ...] = ()
    ) -> CompiledModel:
        return OpenVINOModel(path, threads=threads)
