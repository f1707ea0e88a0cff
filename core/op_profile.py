"""Where the time goes: a run's time per operator type, from the runtime's own profiler.

"% of peak" says how far a build is from its kernels' ceiling but not why; the answer is
usually outside the matmuls (int8's dynamic activation quantisation, fp32 Softmax,
LayerNorm and GELU). ONNX Runtime writes a Chrome-trace JSON of every node run when a
session is created with profiling on; OpenVINO reports per-node times through
``PERF_COUNT``. Both are read here into one shape: milliseconds and share of the total
per operator type, largest first. Kiln profiles a separate session (or compiled model)
so the timed runs never carry the profiler's overhead.
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

Batch = dict[str, np.ndarray]


def _shares(totals: dict[str, float], runs: int, source: str) -> dict[str, Any]:
    whole = sum(totals.values()) or 1.0
    ops = [
        {"op_type": op, "ms_per_run": ms / runs, "share": ms / whole}
        for op, ms in sorted(totals.items(), key=lambda kv: -kv[1])
    ]
    return {"source": source, "runs": runs, "total_ms_per_run": whole / runs, "ops": ops}


def onnxruntime_ops(
    path: Path, batches: Sequence[Batch], input_names: Sequence[str], threads: int | None
) -> dict[str, Any]:
    """Time per ONNX operator type over ``batches`` (after one unprofiled warm-up)."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="kiln-ort-profile-") as work:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(work) / "ops")
        session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        feeds = [
            {n: np.ascontiguousarray(b[n], dtype=np.int64) for n in input_names} for b in batches
        ]
        for feed in feeds:
            session.run(None, feed)
        trace = json.loads(Path(session.end_profiling()).read_text(encoding="utf-8"))
    totals: dict[str, float] = defaultdict(float)
    for event in trace:
        args = event.get("args") or {}
        if (
            event.get("cat") == "Node"
            and "op_name" in args
            and event["name"].endswith("_kernel_time")
        ):
            totals[args["op_name"]] += event.get("dur", 0) / 1000.0
    return _shares(dict(totals), len(feeds), "ONNX Runtime profiler (kernel time per node)")


def openvino_ops(
    compiled: Any, batches: Sequence[Batch], input_names: Sequence[str]
) -> dict[str, Any]:
    """Time per OpenVINO node type, from a model compiled with ``PERF_COUNT`` on."""
    request = compiled.create_infer_request()
    totals: dict[str, float] = defaultdict(float)
    for batch in batches:
        request.infer({n: np.ascontiguousarray(batch[n], dtype=np.int64) for n in input_names})
        for info in request.profiling_info:
            if info.status.name == "EXECUTED":
                key = info.node_type
                if info.exec_type and ("bf16" in info.exec_type or "i8" in info.exec_type):
                    key = f"{info.node_type} ({info.exec_type.rsplit('_', 1)[-1]})"
                totals[key] += info.real_time.total_seconds() * 1000.0
    return _shares(dict(totals), len(batches), "OpenVINO PERF_COUNT (real time per node)")
