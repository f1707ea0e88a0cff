"""ONNX Runtime, on the CPU, CUDA or TensorRT execution providers.

The one runtime whose graphs Kiln rewrites and converts itself: the optimize stage
fuses attention for it, and the quantize stage builds its int8 (dynamic or static
with calibration) and fp16 graphs; TensorRT builds fp16 itself from the fp32 graph.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from kiln_lab.core.benchmark import BenchmarkPlan, CellResult, run_cell
from kiln_lab.core.errors import ConfigError, RuntimeFailure
from kiln_lab.core.paths import cache_dir
from kiln_lab.core.runtimes.base import (
    Batch,
    BuildRequest,
    Built,
    CompiledModel,
    Conversion,
    Graphs,
    Runtime,
    cpu_affinity,
    physical_cores,
)

if TYPE_CHECKING:
    from kiln_lab.core.profiles import Profile

ProviderSpec = str | tuple[str, dict[str, Any]]
TENSORRT = "TensorrtExecutionProvider"


class OnnxRuntimeModel(CompiledModel):
    """An ONNX Runtime inference session over an exported graph."""

    def __init__(
        self,
        path: Path,
        *,
        providers: Sequence[ProviderSpec] = ("CPUExecutionProvider",),
        intra_op_threads: int | None = None,
        inter_op_threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if intra_op_threads:
            options.intra_op_num_threads = intra_op_threads
        if inter_op_threads:
            options.inter_op_num_threads = inter_op_threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        requested = list(providers) or ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=options, providers=requested
            )
        except Exception as exc:  # noqa: BLE001 - ORT raises its own hierarchy
            raise RuntimeFailure(
                f"ONNX Runtime could not load the model: {str(exc).splitlines()[0][:300]}",
                path=path,
                hint="the file may be corrupt: `kiln cache clear` and run again",
            ) from exc
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self.path = Path(path)
        self._options = options
        self.requested = tuple(p if isinstance(p, str) else p[0] for p in requested)
        self.provider_specs = tuple(requested)
        self.providers = tuple(self.session.get_providers())
        first = self.requested[0]
        if first not in self.providers:
            # ORT falls back to the CPU quietly when a GPU provider's libraries fail to
            # load; a CPU figure labelled as a GPU one is worse than no figure.
            raise RuntimeFailure(
                f"ONNX Runtime did not enable {first} (session has: "
                f"{', '.join(self.providers)}); its libraries failed to load",
                path=path,
                hint="check the CUDA / cuDNN / TensorRT libraries that onnxruntime-gpu needs "
                "(run with --debug and see ONNX Runtime's warnings)",
            )
        self.description = f"ONNX Runtime ({', '.join(self.providers)})"

    def run(self, batch: Batch) -> np.ndarray:
        feeds = {
            name: np.ascontiguousarray(batch[name], dtype=np.int64) for name in self.input_names
        }
        return self.session.run(None, feeds)[0]

    def op_breakdown(self, batches: Sequence[Batch]) -> dict[str, Any] | None:
        from kiln_lab.core.op_profile import onnxruntime_ops

        if self.providers[0] != "CPUExecutionProvider":
            return None  # a GPU provider's kernels are timed by its own tools
        threads = self._options.intra_op_num_threads or None
        return onnxruntime_ops(self.path, batches, self.input_names, threads)

    def new_instance(self) -> CompiledModel:
        # One session per benchmark instance, each with the thread count this one runs.
        return OnnxRuntimeModel(
            self.path,
            providers=self.provider_specs,
            intra_op_threads=self.settings()["intra_op_threads"],
        )

    def process_cell_runner(
        self, plan: BenchmarkPlan, input_names: Sequence[str], vocab_size: int
    ) -> Callable[[int, int], CellResult] | None:
        if plan.processes <= 1:
            return None
        return lambda batch, seq_len: cell_across_processes(
            self.path, self.providers, plan, batch, seq_len, input_names, vocab_size
        )

    def settings(self) -> dict[str, Any]:
        intra = self._options.intra_op_num_threads
        inter = self._options.inter_op_num_threads
        return {
            "runtime": "onnxruntime",
            "providers": list(self.providers),
            # 0 means ORT's own choice: one thread per physical core (inter-op: 1, sequential).
            "intra_op_threads": intra or physical_cores(),
            "intra_op_threads_source": "profile" if intra else "onnxruntime default",
            "inter_op_threads": inter or 1,
            "cpu_affinity": cpu_affinity(),
        }


def ort_providers(
    profile: Profile,
    precision: str,
    input_names: tuple[str, ...] = (),
    max_shape: tuple[int, int] | None = None,
) -> list[ProviderSpec]:
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
    specs: list[ProviderSpec] = []
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


class OnnxRuntimeRuntime(Runtime):
    name: ClassVar[str] = "onnxruntime"
    precisions: ClassVar[frozenset[str]] = frozenset({"fp32", "fp16", "int8"})
    fuses_attention: ClassVar[bool] = True

    def batch_call_cost(self, profile: Profile) -> float | None:
        from kiln_lab.core.encode import CALL_COST_TOKENS

        # Measured on the CPU provider only (see CALL_COST_TOKENS).
        return CALL_COST_TOKENS if profile.device == "cpu" else None

    def conversion(self, profile: Profile, precision: str) -> Conversion:
        if precision == "fp16" and TENSORRT in profile.execution_providers:
            return Conversion(None, "TensorRT builds fp16 itself from the fp32 graph")
        if precision in ("fp16", "int8"):
            return Conversion(precision)
        return super().conversion(profile, precision)

    def conversion_source(self, profile: Profile, kind: str, graphs: Graphs) -> Path:
        """Dynamic int8 gains QAttention on the fused graph; static QDQ needs the unfused
        one, where every MatMul's activations can be given calibrated ranges. fp16 takes
        the fused graph on GPU providers (fused Attention has fp16 kernels there), the
        unfused one on the CPU."""
        assert graphs.onnx is not None, "conversions start from the exported ONNX graph"
        if kind == "dynamic":
            return graphs.fused or graphs.onnx
        if kind == "fp16":
            gpu = any(p != "CPUExecutionProvider" for p in profile.execution_providers)
            return graphs.fused if gpu and graphs.fused else graphs.onnx
        return graphs.onnx

    def build(self, request: BuildRequest) -> Built:
        profile, precision, graphs = request.profile, request.precision, request.graphs
        path = graphs.converted or graphs.fused or graphs.onnx
        if path is None:
            raise ConfigError("ONNX Runtime needs the export stage's ONNX graph")
        tensorrt = TENSORRT in profile.execution_providers
        # fp16 graphs come from the quantize stage; TensorRT builds fp16 itself from the
        # fp32 graph (trt_fp16_enable).
        if precision not in self.precisions or (
            precision == "fp16" and not tensorrt and not graphs.converted
        ):
            raise ConfigError(
                f"ONNX Runtime here builds fp32, fp16 (GPU) and int8, not {precision}"
            )
        model = OnnxRuntimeModel(
            path,
            providers=ort_providers(
                profile,
                precision,
                request.input_names,
                (request.batch_size, request.seq_len),
            ),
            intra_op_threads=profile.defaults.intra_op_threads,
            inter_op_threads=profile.defaults.inter_op_threads,
        )
        return Built(request.fixed(model))

    def open(
        self, path: Path, *, threads: int | None = None, input_names: tuple[str, ...] = ()
    ) -> CompiledModel:
        return OnnxRuntimeModel(path, intra_op_threads=threads)


# -- one benchmark cell across several processes, each with its own session ----------------
# Processes start with ``spawn`` so no session state is inherited; each runs the same
# warm-up and trials as a single-process cell, and the totals add up. Latency quantiles
# are combined conservatively: the median of the p50s, the largest p90/p99/max.


def _one_process(args: tuple) -> dict[str, Any]:
    path, providers, plan_dict, batch, seq_len, input_names, vocab_size = args
    plan = BenchmarkPlan(**{**plan_dict, "processes": 1})
    models = [
        OnnxRuntimeModel(Path(path), providers=tuple(providers)) for _ in range(plan.instances)
    ]
    return asdict(
        run_cell(models, batch, seq_len, plan, input_names=input_names, vocab_size=vocab_size)
    )


def cell_across_processes(
    path: Path,
    providers: Sequence[str],
    plan: BenchmarkPlan,
    batch: int,
    seq_len: int,
    input_names: Sequence[str],
    vocab_size: int,
) -> CellResult:
    context = multiprocessing.get_context("spawn")
    job = (str(path), list(providers), asdict(plan), batch, seq_len, list(input_names), vocab_size)
    with context.Pool(plan.processes) as pool:
        parts = pool.map(_one_process, [job] * plan.processes)
    trials = [sum(p["samples_per_s_trials"][i] for p in parts) for i in range(plan.trials)]
    mean = statistics.fmean(trials)
    latency = {
        "mean_ms": statistics.fmean(p["latency"]["mean_ms"] for p in parts),
        "p50_ms": statistics.median(p["latency"]["p50_ms"] for p in parts),
        "p90_ms": max(p["latency"]["p90_ms"] for p in parts),
        "p99_ms": max(p["latency"]["p99_ms"] for p in parts),
        "max_ms": max(p["latency"]["max_ms"] for p in parts),
        "runs": sum(p["latency"]["runs"] for p in parts),
    }
    return CellResult(
        batch,
        seq_len,
        mean,
        trials,
        (max(trials) - min(trials)) / mean * 100 if mean else 0.0,
        latency,
        {"processes": float(plan.processes)},
    )
