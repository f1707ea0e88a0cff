"""``kiln-bench``: a small benchmark program with a vendor tool's shape, for real.

``python -m kiln_lab.tui.commands.kiln_bench --model model.onnx --batch 8 --seq-len 128``
(or the ``kiln-bench`` script) loads a compiled file with a local runtime (ONNX Runtime,
OpenVINO, Paddle Inference, TorchScript), feeds it fixed-shape random token ids after a
warm-up, and prints its figures as plain lines, the way vendor tools (``vamp``,
``ais_bench``, ``mm_run``) do::

    kiln-bench: runtime=onnxruntime batch=8 seq_len=128 iterations=50 threads=2
    throughput: 123.4 samples/s
    latency mean: 64.1 ms p50: 63.9 ms p90: 66.0 ms p99: 70.2 ms

Kiln's ``cpu-external-ort`` profile runs it as its benchmark step and reads those
lines back with regular expressions, which proves the external-tool path end to end on
any machine. It imports no part of the pipeline beyond the runtimes, and it lives with
the other command-line front ends (not in ``core``) because all it adds to them is
argument parsing and printing.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

RUNTIMES = ("onnxruntime", "openvino", "paddle", "torchscript")


def synthetic_inputs(
    names: Sequence[str], batch: int, seq_len: int, *, vocab: int = 100, seed: int = 0
) -> dict[str, np.ndarray]:
    """Random token ids in [5, vocab), no padding; type ids 0 (any model has 100 tokens)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab, size=(batch, seq_len), dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    if "token_type_ids" in names:
        feeds["token_type_ids"] = np.zeros_like(ids)
    return {name: feeds[name] for name in names}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, run the model, print the figures; the exit status."""
    parser = argparse.ArgumentParser(prog="kiln-bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, type=Path, help="compiled model file")
    parser.add_argument("--runtime", choices=RUNTIMES, default="onnxruntime")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="0: the runtime's default")
    parser.add_argument(
        "--inputs",
        default="input_ids,attention_mask,token_type_ids",
        help="input names for a TorchScript file (others read them from the model)",
    )
    args = parser.parse_args(argv)
    if args.batch < 1 or args.seq_len < 2 or args.iterations < 1 or args.warmup < 0:
        parser.error("batch >= 1, seq-len >= 2, iterations >= 1 and warmup >= 0")
    if not args.model.exists():
        print(f"kiln-bench: error: no such model file: {args.model}", file=sys.stderr)
        return 2

    from kiln_lab.core.errors import KilnError
    from kiln_lab.core.runtimes import load_artifact

    try:
        model = load_artifact(
            args.runtime,
            args.model,
            threads=args.threads or None,
            input_names=tuple(args.inputs.split(",")),
        )
    except KilnError as exc:
        print(f"kiln-bench: error: {exc.one_line()}", file=sys.stderr)
        return 1
    names = getattr(model, "input_names", ("input_ids", "attention_mask"))
    feeds = synthetic_inputs(names, args.batch, args.seq_len)
    settings = model.settings()
    print(
        f"kiln-bench: runtime={args.runtime} batch={args.batch} seq_len={args.seq_len} "
        f"iterations={args.iterations} threads={settings.get('intra_op_threads')}",
        flush=True,
    )
    for _ in range(args.warmup):
        model.run(feeds)
    latencies = []
    start = time.perf_counter()
    for index in range(args.iterations):
        begin = time.perf_counter()
        model.run(feeds)
        latencies.append(time.perf_counter() - begin)
        if (index + 1) % max(1, args.iterations // 4) == 0:
            print(f"progress: {index + 1}/{args.iterations} iterations", flush=True)
    wall = time.perf_counter() - start
    ms = np.asarray(latencies) * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    print(f"throughput: {args.iterations * args.batch / wall:.2f} samples/s", flush=True)
    print(
        f"latency mean: {ms.mean():.3f} ms p50: {p50:.3f} ms p90: {p90:.3f} ms p99: {p99:.3f} ms",
        flush=True,
    )
    model.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
