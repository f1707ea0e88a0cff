"""int8 against fp32 in ONNX Runtime, side by side in one run, at sequence 128, batch 32.

On the built-in NER model (``zh-ner-tiny``) and on a bert-base-sized model with random
weights (``bert-base-chinese-ner --perf-only``): samples/s of fp32 and of both int8
variants (static QDQ with calibration, dynamic on the fused graph), with the spread over
trials, and each int8 / fp32 ratio. This is the measurement behind the cpu-onnxruntime
profile's int8 default. Uses Kiln's own benchmark stage, so the figures are the ones
``kiln bench`` would print.

``python bench/int8_speed.py [--models zh-ner-tiny,bert-base-chinese-ner] [--trials 3]``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiln_lab.core.environment import environment  # noqa: E402

PERF_ONLY = {
    "bert-base-chinese-ner",
    "xlm-roberta-base-ner",
    "roberta-base-sst2",
    "chinese-roberta-wwm-ext-chnsenticorp",
    "infoxlm-base-xnli",
}


VARIANTS = ("static", "dynamic")


def measure(
    model: str, precision: str, trials: int, iterations: int, quantization: str | None = None
) -> dict:
    from kiln_lab.core.pipeline import run_pipeline
    from kiln_lab.core.runconfig import RunConfig

    config = RunConfig(
        model=model,
        precision=precision,
        quantization=quantization,
        perf_only=model in PERF_ONLY,
        evaluate=False,
        bench_batch_sizes=(32,),
        bench_seq_lens=(128,),
        bench_iterations=iterations,
        bench_trials=trials,
        bench_warmup=1,
        calibration_samples=64,
        guard=False,
        limit=64,
    )
    name = f"int8-speed-{model}-{precision}-{quantization or 'none'}"
    result = run_pipeline(config, name, lambda e: None)
    (cell,) = result["benchmark"]["cells"]
    return cell


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="zh-ner-tiny,bert-base-chinese-ner")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    os.environ.setdefault("KILN_HOME", tempfile.mkdtemp(prefix="kiln-int8-speed-"))
    rows = []
    for model in args.models.split(","):
        row = {"model": model, "fp32": measure(model, "fp32", args.trials, args.iterations)}
        for variant in VARIANTS:
            cell = measure(model, "int8", args.trials, args.iterations, variant)
            row[f"int8 {variant}"] = cell
            row[f"ratio {variant}"] = cell["samples_per_s"] / row["fp32"]["samples_per_s"]
        rows.append(row)
    if args.json:
        print(json.dumps({"rows": rows, "environment": environment()}, indent=2, default=str))
        return 0
    env = environment()
    print(
        f"machine: {env['cpu']['model']} ({env['cpu']['usable_cores']} cores, "
        f"{', '.join(env['cpu']['flags'])}); onnxruntime {env['packages']['onnxruntime']}"
    )
    print(
        "batch 32 x seq 128: fp32, int8 static (QDQ, MinMax, 64 calibration samples), "
        "int8 dynamic (fused graph)"
    )
    for row in rows:
        for precision in ("fp32", *(f"int8 {v}" for v in VARIANTS)):
            cell = row[precision]
            trials = ", ".join(f"{r:.1f}" for r in cell["samples_per_s_trials"])
            print(
                f"  {row['model']:<24} {precision:<12}: {cell['samples_per_s']:8.1f} samples/s "
                f"(trials {trials}; spread {cell['spread_pct']:.1f}%), p99 "
                f"{cell['latency']['p99_ms']:.0f} ms, {cell['percent_of_peak']:.0f}% of peak"
            )
        for variant in VARIANTS:
            print(f"  {row['model']:<24} int8 {variant} / fp32 = {row[f'ratio {variant}']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
