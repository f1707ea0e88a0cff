"""Roofline: how close a run comes to what this machine's matmul units can do.

Kiln measures the peak once per machine, runtime version and thread count (cached in
KILN_HOME), by timing large square MatMuls in ONNX Runtime: fp32 ``MatMul`` and int8
``MatMulInteger``. A run's achieved GFLOP/s comes from the model's FLOPs per token
(encoder projections, feed-forward, attention) times the tokens it processed.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import numpy as np

from kiln_lab.core.environment import cpu_info
from kiln_lab.core.export import cache_key
from kiln_lab.core.paths import cache_dir

log = logging.getLogger(__name__)

SIZE = 1024
ROOFLINE_VERSION = 1


def encoder_flops_per_sample(config: Any, seq_len: float, num_labels: int) -> float:
    """Multiply-adds x2 of one sequence through a BERT-family encoder and its head."""
    h = config.hidden_size
    inter = config.intermediate_size
    layers = config.num_hidden_layers
    per_token = layers * (2 * 4 * h * h + 2 * 2 * h * inter) + 2 * h * num_labels
    attention = layers * 2 * 2 * seq_len * h  # QK^T and AV, per token
    return float(seq_len * (per_token + attention))


def _matmul_graph(kind: str) -> bytes:
    from onnx import TensorProto, helper

    if kind == "fp32":
        node = helper.make_node("MatMul", ["a", "b"], ["y"])
        a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [SIZE, SIZE])
        b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [SIZE, SIZE])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [SIZE, SIZE])
    else:
        node = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
        a = helper.make_tensor_value_info("a", TensorProto.UINT8, [SIZE, SIZE])
        b = helper.make_tensor_value_info("b", TensorProto.INT8, [SIZE, SIZE])
        y = helper.make_tensor_value_info("y", TensorProto.INT32, [SIZE, SIZE])
    graph = helper.make_graph([node], f"peak-{kind}", [a, b], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return model.SerializeToString()


def _measure(kind: str, threads: int | None, seconds: float) -> float:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(_matmul_graph(kind), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    if kind == "fp32":
        feeds = {
            "a": rng.random((SIZE, SIZE), dtype=np.float32),
            "b": rng.random((SIZE, SIZE), dtype=np.float32),
        }
    else:
        feeds = {
            "a": rng.integers(0, 255, (SIZE, SIZE), dtype=np.uint8),
            "b": rng.integers(-127, 127, (SIZE, SIZE), dtype=np.int8),
        }
    session.run(None, feeds)
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        session.run(None, feeds)
        best = min(best, time.perf_counter() - start)
    return 2 * SIZE**3 / best / 1e9


def peak_gflops(threads: int | None = None, *, seconds: float = 1.0) -> dict[str, float]:
    """Peak fp32 GFLOP/s and int8 GOP/s on this machine (measured once, then cached)."""
    import onnxruntime

    key = cache_key(
        kind="roofline",
        version=ROOFLINE_VERSION,
        cpu=cpu_info()["model"],
        ort=onnxruntime.__version__,
        threads=threads,
    )
    path = cache_dir("roofline") / f"{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    log.info("measuring this machine's peak matmul throughput once (about %.0f s)", 2 * seconds)
    peaks = {"fp32": _measure("fp32", threads, seconds), "int8": _measure("int8", threads, seconds)}
    path.write_text(json.dumps(peaks))
    log.info("peak: fp32 %.0f GFLOP/s, int8 %.0f GOP/s", peaks["fp32"], peaks["int8"])
    return peaks


def achieved(
    config: Any,
    num_labels: int,
    samples_per_s: float,
    mean_seq_len: float,
    precision: str,
    peaks: dict[str, float],
) -> dict[str, float]:
    """Achieved GFLOP/s and its share of the precision's peak."""
    gflops = encoder_flops_per_sample(config, mean_seq_len, num_labels) * samples_per_s / 1e9
    peak = peaks.get("int8" if precision == "int8" else "fp32") or 0.0
    return {
        "achieved_gflops": gflops,
        "peak_gflops": peak,
        "percent_of_peak": 100.0 * gflops / peak if peak else 0.0,
    }
