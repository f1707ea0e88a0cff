"""Every CPU build of a BERT-base model, side by side, decided under noise.

Issue 18's targets, measured as ratios in one run (random weights, ``--perf-only``):

1. each Kiln build (ONNX Runtime fp32/int8, OpenVINO fp32/bf16, PyTorch fp32/bf16 —
   what this CPU offers) against plain ``transformers`` fp32 with sdpa attention, at
   batch 32 x seq 128, in interleaved pairs (bench/paired.py), with each build's share
   of *its own* kernel peak (core/roofline.py);
2. Kiln's ``--profile auto --precision auto`` choice against the best build found by
   trying them all here: the target is that auto picks it (or one whose interval
   overlaps it);
3. Kiln's OpenVINO build against OpenVINO's own ``benchmark_app`` on the same exported
   graph and shape (Kiln's harness cost);
4. target: the auto build at least 6x plain transformers fp32.

Exits 0 when every target is met, 1 when one is missed, 3 (undecided) when the
machine was too noisy to tell. ``python bench/builds.py [--model M] [--pairs N]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from paired import Paired, exit_code, run_pairs  # noqa: E402

from kiln_lab.core.environment import environment  # noqa: E402
from kiln_lab.core.machine_load import LoadMeter  # noqa: E402

TARGET_AUTO_VS_TRANSFORMERS = 6.0
TARGET_VS_BENCHMARK_APP = 0.95


def _baseline(loaded: Any, batch: dict) -> Any:
    """Plain transformers fp32, sdpa attention, the same config and random weights."""
    import torch
    from transformers import AutoModelForTokenClassification

    config = loaded.model.config
    model = AutoModelForTokenClassification.from_config(config, attn_implementation="sdpa")
    model.eval()
    feeds = {k: torch.from_numpy(v) for k, v in batch.items()}

    def trial() -> float:
        with torch.inference_mode():
            model(**feeds)
        return float(next(iter(batch.values())).shape[0])

    return trial


def _benchmark_app(onnx: Path, batch: dict, precision: str, seconds: int) -> float | None:
    """OpenVINO's own tool on Kiln's export: samples/s it reports, or None without it
    (or when it did not measure this batch)."""
    tool = shutil.which("benchmark_app") or str(Path(sys.executable).parent / "benchmark_app")
    if not Path(tool).exists():
        return None
    shape = ",".join(f"{name}[{','.join(map(str, a.shape))}]" for name, a in batch.items())
    # Without a layout naming the batch dimension benchmark_app takes the batch as 1 and
    # its FPS counts inferences (2.13 for batch 32, where it meant 68 samples/s).
    layout = ",".join(f"{name}[N{'C' * (a.ndim - 1)}]" for name, a in batch.items())
    argv = [
        tool, "-m", str(onnx), "-d", "CPU", "-shape", shape, "-layout", layout,
        "-t", str(seconds), "-hint", "latency",
        "-infer_precision", "bf16" if precision == "bf16" else "f32",
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    rows = re.search(r"Model batch size:\s*(\d+)", done.stdout)
    found = re.search(r"Throughput:\s*([0-9.]+)\s*FPS", done.stdout)
    if found is None or rows is None or int(rows.group(1)) != next(iter(batch.values())).shape[0]:
        return None  # not samples/s of this batch: no comparison rather than a wrong one
    return float(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bert-base-chinese-ner")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0, help="least seconds per trial")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    os.environ.setdefault("KILN_HOME", tempfile.mkdtemp(prefix="kiln-builds-"))

    from kiln_lab.core.benchmark import synthetic_batch
    from kiln_lab.core.roofline import achieved, peak_for
    from kiln_lab.core.runconfig import RunConfig
    from kiln_lab.core.stages import auto

    base_cfg = RunConfig(model=args.model, perf_only=True, batch_size=args.batch, seq_len=args.seq)
    meter = LoadMeter()
    print(f"builds.py · {args.model} · batch {args.batch} x seq {args.seq}", file=sys.stderr)
    chosen, skipped = auto.candidates(
        RunConfig(model=args.model, profile="auto", precision="auto", perf_only=True)
    )
    builds: dict[str, Any] = {}
    for profile, precision in chosen:
        cfg = dataclasses.replace(base_cfg, profile=profile, precision=precision)
        resolved, loaded, compiled, _ = auto.build(cfg, "bench")
        builds[f"{profile} {precision}"] = (resolved, loaded, compiled)
        print(f"  built {profile} {precision}", file=sys.stderr)
    _, loaded, _ = next(iter(builds.values()))
    config = loaded.model.config
    batch = synthetic_batch(args.batch, args.seq, loaded.input_names, int(config.vocab_size))
    baseline = ("transformers fp32 sdpa", _baseline(loaded, batch))

    rows: dict[str, dict[str, Any]] = {}
    for name, (resolved, _, compiled) in builds.items():
        model = compiled.model

        def trial(model: Any = model) -> float:
            model.run(batch)
            return float(args.batch)

        pair = run_pairs((name, trial), baseline, pairs=args.pairs, min_seconds=args.seconds)
        profile = resolved.profile
        peak = peak_for(profile.runtime, name.split()[1], profile.defaults.intra_op_threads)
        rate = pair.median * (sum(pair.rates_b) / len(pair.rates_b))
        roof = achieved(config, len(resolved.card.labels), rate, args.seq, peak)
        rows[name] = {"paired": pair, "samples_per_s": rate, **roof}
        print("  " + pair.line(), file=sys.stderr)

    best = max(rows, key=lambda n: rows[n]["paired"].median)
    decision = auto.choose(
        dataclasses.replace(base_cfg, profile="auto", precision="auto"),
        "bench",
        lambda: False,
    )
    auto_name = f"{decision['profile']} {decision['precision']}"
    auto_pair: Paired = rows[auto_name]["paired"]
    low_best = rows[best]["paired"].interval[0]
    auto_verdict = "met" if auto_name == best or auto_pair.interval[1] >= low_best else "missed"
    checks = [
        ("auto build vs transformers fp32", auto_pair, TARGET_AUTO_VS_TRANSFORMERS,
         auto_pair.verdict(TARGET_AUTO_VS_TRANSFORMERS)),
        ("auto picks the fastest build", None, None, auto_verdict),
    ]  # fmt: skip
    app = _benchmark_app_pairs(builds, batch, args)
    if app is not None:
        checks.append(
            ("Kiln OpenVINO vs benchmark_app", app, TARGET_VS_BENCHMARK_APP,
             app.verdict(TARGET_VS_BENCHMARK_APP))
        )  # fmt: skip
    load = meter.read()
    figures = {
        "environment": environment(),
        "load": load.to_dict(),
        "skipped": skipped,
        "builds": {
            n: {k: (v.to_dict() if isinstance(v, Paired) else v) for k, v in r.items()}
            for n, r in rows.items()
        },
        "best": best,
        "auto": {k: decision[k] for k in ("profile", "precision", "why", "cached")},
        "checks": [
            {"name": n, "target": t, "verdict": v, **({"paired": p.to_dict(t)} if p else {})}
            for n, p, t, v in checks
        ],
    }
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
    else:
        _print(figures, rows, checks, load)
    return exit_code([v for *_, v in checks])


def _benchmark_app_pairs(builds: dict, batch: dict, args: argparse.Namespace) -> Paired | None:
    """Kiln's fastest OpenVINO build against benchmark_app on the same graph, in pairs."""
    import time

    name = next((n for n in ("cpu-openvino bf16", "cpu-openvino fp32") if n in builds), None)
    if name is None:
        return None
    resolved, _, compiled = builds[name]
    onnx = Path(compiled.model.path)
    precision = name.split()[1]
    result = Paired(f"Kiln {name}", "benchmark_app")
    seconds = max(3, round(args.seconds))
    for _ in range(max(3, args.pairs // 2 + 1)):
        tool = _benchmark_app(onnx, batch, precision, seconds)
        if tool is None:
            return None
        runs, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            compiled.model.run(batch)
            runs += 1
        result.rates_a.append(runs * args.batch / (time.perf_counter() - start))
        result.rates_b.append(tool)
    return result


def _print(figures: dict, rows: dict, checks: list, load: Any) -> None:
    env = figures["environment"]
    print(
        f"machine: {env['cpu']['model']} ({env['cpu']['usable_cores']} cores, "
        f"{', '.join(env['cpu']['flags'])}); load while measuring: "
        f"{load.busy or 'quiet'} (loadavg {load.loadavg_1m:.2f})"
    )
    for name, row in sorted(rows.items(), key=lambda kv: -kv[1]["paired"].median):
        pair = row["paired"]
        low, high = pair.interval
        percent = row.get("percent_of_peak")
        share = f"{percent:5.1f}% of {row.get('peak_kernel')}" if percent else "no peak"
        print(
            f"  {name:22s} {row['samples_per_s']:8.1f} samples/s  {pair.median:5.2f}x "
            f"transformers fp32 ({low:.2f}-{high:.2f})  {share}"
        )
    for skipped in figures["skipped"]:
        print(f"  {skipped['profile']} {skipped['precision']}: not tried ({skipped['why']})")
    print(f"auto chose {figures['auto']['profile']} {figures['auto']['precision']}: "
          f"{figures['auto']['why']}; best by trying all: {figures['best']}")  # fmt: skip
    for name, pair, target, verdict in checks:
        text = pair.line(target) if pair is not None else verdict
        print(f"[{verdict:9s}] {name}: {text}")


if __name__ == "__main__":
    sys.exit(main())
