"""Roofline: how close a run comes to what this machine's matmul kernels can do.

A run is held against the peak of *its own* runtime and precision: ONNX Runtime fp32
``MatMul`` and int8 ``MatMulInteger``; PyTorch fp32, bf16 and fp16 ``mm``; OpenVINO f32,
bf16 and int8 FullyConnected. Dividing an int8 or bf16 run by the fp32 peak (as Kiln once did)
printed 1903%. Each peak is the best call of 2048^3 and 4096^3 products (constant
weights, as a model's projections; for OpenVINO a chain of eight, see OPENVINO_CHAIN)
over about two seconds, keyed by CPU model and flags, runtime version and threads.
A peak taken while the machine was busy (:mod:`kiln_lab.core.machine_load`) is marked
suspect, and so is every figure held against it, and it is re-taken after ten minutes.
A run that achieves more than its peak marks the peak suspect and drops it from the
cache, rather than printing a figure above 100%.

A run's achieved GFLOP/s comes from the model's FLOPs per token (encoder projections,
feed-forward, attention) times the tokens it processed, padding included.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from kiln_lab.core.environment import cpu_info, package_version
from kiln_lab.core.export import cache_key
from kiln_lab.core.machine_load import LoadMeter
from kiln_lab.core.paths import cache_dir

log = logging.getLogger(__name__)

SIZES = (2048, 4096)
"""Square products a peak is the best of: the AMX int8 kernels reach their plateau only
at 4096 (1,874 vs 1,592 GOP/s for OpenVINO's int8 FullyConnected on 2 threads here),
while 4096^3 in fp32 is slow enough that 2048 keeps a measurement short."""
SECONDS = 2.0
ROOFLINE_VERSION = 5
RETAKE_BUSY_AFTER_S = 600.0
"""A peak taken under load is kept (marked suspect) only this long, then re-taken: a
busy machine does not pay two seconds per run, and a quiet one soon gets a true peak."""

KERNELS: dict[tuple[str, str], str] = {
    ("onnxruntime", "fp32"): "ONNX Runtime MatMul fp32 (constant weight)",
    ("onnxruntime", "int8"): "ONNX Runtime MatMulInteger u8 x s8 (constant weight)",
    ("torch", "fp32"): "torch.mm fp32",
    ("torch", "bf16"): "torch.mm bf16",
    ("torch", "fp16"): "torch.mm fp16",
    ("openvino", "fp32"): "OpenVINO FullyConnected f32 x8",
    ("openvino", "bf16"): "OpenVINO FullyConnected bf16 x8",
    ("openvino", "int8"): "OpenVINO FullyConnected int8 x8",
}
"""The kernel each (runtime, precision) is held against; others have no peak here."""
_SAME_KERNELS = {"torchscript": "torch"}


def encoder_flops_per_sample(config: Any, seq_len: float, num_labels: int) -> float:
    """Multiply-adds x2 of one sequence through a BERT-family encoder and its head."""
    h = config.hidden_size
    inter = config.intermediate_size
    layers = config.num_hidden_layers
    per_token = layers * (2 * 4 * h * h + 2 * 2 * h * inter) + 2 * h * num_labels
    attention = layers * 2 * 2 * seq_len * h  # QK^T and AV, per token
    return float(seq_len * (per_token + attention))


@dataclass(frozen=True)
class Peak:
    """One kernel's measured peak, and whether it can be trusted."""

    runtime: str
    precision: str
    kernel: str
    gflops: float
    size: int
    seconds: float
    load: dict[str, Any]
    suspect: str | None = None
    """Why this peak may be low (taken under load) or wrong (a run went above it)."""
    measured_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _timed(run: Callable[[], object], seconds: float) -> float:
    """Best time of one call over ``seconds`` (after one warm-up call)."""
    run()
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _ort_kernel(precision: str, threads: int | None, size: int) -> Callable[[], object]:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    # The weight is a constant initializer, as in a model: ONNX Runtime pre-packs it, and
    # a peak timed with two runtime inputs (Kiln's first roofline) sat well below the
    # kernel a model's projections actually run.
    if precision == "fp32":
        op, types = "MatMul", (TensorProto.FLOAT, TensorProto.FLOAT)
        a = rng.random((size, size), dtype=np.float32)
        b = rng.random((size, size), dtype=np.float32)
    else:
        op, types = "MatMulInteger", (TensorProto.UINT8, TensorProto.INT32)
        a = rng.integers(0, 255, (size, size), dtype=np.uint8)
        b = rng.integers(-127, 127, (size, size), dtype=np.int8)
    feeds = {"a": a}
    inputs = [helper.make_tensor_value_info("a", types[0], [size, size])]
    output = helper.make_tensor_value_info("y", types[1], [size, size])
    graph = helper.make_graph(
        [helper.make_node(op, ["a", "b"], ["y"])],
        "peak",
        inputs,
        [output],
        initializer=[numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return lambda: session.run(None, feeds)


def _torch_kernel(precision: str, threads: int | None, size: int) -> Callable[[], object]:
    import torch

    if threads:
        torch.set_num_threads(threads)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(size, size, generator=generator).to(dtype)
    b = torch.rand(size, size, generator=generator).to(dtype)

    def run() -> object:
        with torch.inference_mode():
            return torch.mm(a, b)

    return run


OPENVINO_CHAIN = 8
"""OpenVINO's peak is a chain of this many FullyConnected layers: its inputs and outputs
are f32 at the model's edge, and one product pays the f32 <-> bf16/int8 conversions a
whole model pays once (one bf16 FC: 1,115 GFLOP/s here; eight chained: 1,780)."""


def _openvino_kernel(precision: str, threads: int | None, size: int) -> Callable[[], object]:
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    width = size // 2
    a = ops.parameter([size, width], np.float32, name="a")
    x: Any = a

    def fq(node: Any, low: float, high: float, levels: int) -> Any:
        lo, hi = ops.constant(np.float32(low)), ops.constant(np.float32(high))
        return ops.fake_quantize(node, lo, hi, lo, hi, levels)

    for _ in range(OPENVINO_CHAIN):
        # Constant weights: FullyConnected with pre-packed (AMX) weights, as in a model.
        w = ops.constant((rng.random((width, width), dtype=np.float32) - 0.5) / width)
        if precision == "int8":  # FakeQuantize on both sides, as NNCF writes them
            x = ops.matmul(fq(x, -1.0, 1.0, 256), fq(w, -1.0, 1.0, 255), False, False)
        else:
            x = ops.matmul(x, w, False, False)
    model = ov.Model([x], [a], "peak")
    config: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        "PERFORMANCE_HINT": "LATENCY",
    }
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = ov.Core().compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    feeds = {"a": rng.random((size, width), dtype=np.float32)}
    return lambda: request.infer(feeds)


def _flops(runtime: str, size: int) -> float:
    """Operations of one call of the kernel ``runtime``'s builder makes at ``size``."""
    if runtime == "openvino":
        return OPENVINO_CHAIN * 2.0 * size * (size // 2) ** 2
    return 2.0 * size**3


_BUILDERS = {"onnxruntime": _ort_kernel, "torch": _torch_kernel, "openvino": _openvino_kernel}


def _cache_path(runtime: str, precision: str, threads: int | None) -> Any:
    cpu = cpu_info()
    key = cache_key(
        kind="roofline",
        version=ROOFLINE_VERSION,
        runtime=runtime,
        precision=precision,
        version_of_runtime=package_version(runtime),
        cpu=cpu["model"],
        flags=cpu["flags"],
        threads=threads,
    )
    return cache_dir("roofline") / f"{key}.json"


def peak_for(
    runtime: str, precision: str, threads: int | None = None, *, seconds: float = SECONDS
) -> Peak | None:
    """The peak of the kernel a (runtime, precision) build runs on; None where Kiln has
    no kernel to hold it against (fp16 on ONNX Runtime's CPU, a vendor's card)."""
    runtime = _SAME_KERNELS.get(runtime, runtime)
    kernel = KERNELS.get((runtime, precision))
    if kernel is None:
        return None
    path = _cache_path(runtime, precision, threads)
    if path.exists():
        try:
            cached = Peak(**json.loads(path.read_text()))
        except (ValueError, TypeError):
            path.unlink(missing_ok=True)
        else:
            if not cached.suspect or time.time() - cached.measured_at < RETAKE_BUSY_AFTER_S:
                return cached
    log.info("measuring the peak of %s on this machine (about %.0f s)", kernel, seconds)
    try:
        meter = LoadMeter()
        rates = []
        for size in SIZES:
            run = _BUILDERS[runtime](precision, threads, size)
            rates.append((_flops(runtime, size) / _timed(run, seconds / len(SIZES)) / 1e9, size))
            del run
        load = meter.read()
    except Exception as exc:  # noqa: BLE001 - a kernel this build lacks: no peak, said so
        log.warning("could not measure the peak of %s: %s", kernel, exc)
        return None
    gflops, size = max(rates)
    peak = Peak(
        runtime,
        precision,
        kernel,
        round(gflops, 1),
        size,
        seconds,
        load.to_dict(),
        suspect=f"measured while busy: {load.busy}" if load.busy else None,
        measured_at=time.time(),
    )
    path.write_text(json.dumps(peak.to_dict()))
    if peak.suspect:
        log.warning(
            "peak of %s: %.0f GFLOP/s, %s; re-taken after %.0f minutes",
            kernel,
            peak.gflops,
            peak.suspect,
            RETAKE_BUSY_AFTER_S / 60,
        )
    else:
        log.info("peak of %s: %.0f GFLOP/s", kernel, peak.gflops)
    return peak


def achieved(
    config: Any,
    num_labels: int,
    samples_per_s: float,
    mean_seq_len: float,
    peak: Peak | None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Achieved GFLOP/s and its share of the build's own peak, never silently above it."""
    gflops = encoder_flops_per_sample(config, mean_seq_len, num_labels) * samples_per_s / 1e9
    if peak is None:
        return {"achieved_gflops": gflops, "peak_gflops": None, "percent_of_peak": None}
    percent = 100.0 * gflops / peak.gflops if peak.gflops else None
    suspect = peak.suspect
    if percent is not None and percent > 100.0:
        suspect = (
            f"the run achieved {percent:.0f}% of the {peak.kernel} peak, so that peak is "
            "wrong (taken under load?); it is dropped and re-measured next run"
        )
        log.warning(suspect)
        _cache_path(peak.runtime, peak.precision, threads).unlink(missing_ok=True)
    return {
        "achieved_gflops": gflops,
        "peak_gflops": peak.gflops,
        "percent_of_peak": percent,
        "peak_kernel": peak.kernel,
        "peak_suspect": suspect,
    }
