"""Kiln against what users run today, measured side by side in one process.

1. Kiln's evaluation (int8, length bucketing, tokenisation overlapped) of the built-in
   NER test split vs the transformers ``pipeline("token-classification")`` on the same
   model in fp32 eager with batch_size=32, tokenisation included. Target: >= 6x the
   pipeline's throughput, with entity F1 within 1.0 point of the pipeline's.
2. Kiln's evaluation loop vs a bare ONNX Runtime loop on identical pre-tokenised
   batches (same session): target >= 0.95 (harness, events and store cost < 5%).
3. Fixed padding to the card's maximum (the vendor guides pad everything) vs length
   bucketing, same int8 model: the speed-up.

Prints absolute figures, ratios against their targets, the machine and the versions;
exits non-zero when a target is missed. ``python bench/compare.py [--model NAME]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.environment import environment  # noqa: E402

TARGET_VS_PIPELINE = 6.0
TARGET_F1_POINTS = 1.0
TARGET_HARNESS = 0.95


def kiln_run(model: str, precision: str, padding: str, limit: int | None) -> dict:
    from core.pipeline import run_pipeline
    from core.runconfig import RunConfig

    config = RunConfig(model=model, precision=precision, padding=padding, limit=limit)
    return run_pipeline(config, f"bench-{precision}-{padding}", lambda event: None)


def pipeline_baseline(model: str, limit: int | None) -> dict:
    """The transformers pipeline on raw sentences, fp32 eager, batch 32, as users run it."""
    import torch
    from transformers import pipeline

    from core.data import load_builtin
    from core.metrics import score_ner
    from core.models import get_card, load_model

    card = get_card(model)
    loaded = load_model(card)
    examples = load_builtin(card.default_dataset).split("test").examples
    examples = examples[:limit] if limit else examples
    texts = ["".join(ex.tokens) for ex in examples]
    ner = pipeline(
        "token-classification",
        model=loaded.model,
        tokenizer=loaded.tokenizer,
        device=-1,
        ignore_labels=[],
    )
    torch.set_num_threads(os.cpu_count() or 1)
    start = time.perf_counter()
    outputs = ner(texts, batch_size=32)
    elapsed = time.perf_counter() - start
    predicted = []
    for example, tokens in zip(examples, outputs, strict=True):
        tags = ["O"] * len(example.tokens)
        for token in tokens:
            label = token["entity"]
            for offset, char in enumerate(range(token["start"], token["end"])):
                if char < len(tags):
                    tags[char] = label if offset == 0 or label == "O" else "I-" + label[2:]
        predicted.append(tags)
    scores = score_ner([list(ex.tags) for ex in examples], predicted)
    return {
        "samples_per_s": len(examples) / elapsed,
        "seconds": elapsed,
        "entity_f1": scores.overall.f1,
        "examples": len(examples),
    }


def harness_overhead(model: str, limit: int | None, repeats: int = 3) -> dict:
    """Kiln's evaluate() (with a real store) vs a bare session loop on the same batches."""
    from core.encode import BatchEncoder
    from core.evaluate import evaluate
    from core.events import Event
    from core.models import get_card, load_model
    from core.pipeline import run_pipeline
    from core.runconfig import RunConfig
    from core.runtimes import OnnxRuntimeModel
    from core.store import RunStore

    card = get_card(model)
    result = run_pipeline(RunConfig(model=model, precision="int8", limit=8), "h", lambda e: None)
    session = OnnxRuntimeModel(Path(result["quantization"]["path"]))
    loaded = load_model(card)
    from core.data import load_builtin

    examples = load_builtin(card.default_dataset).split("test").examples
    examples = examples[:limit] if limit else examples
    encoder = BatchEncoder(
        loaded.tokenizer,
        card.task,
        card.max_seq_len,
        loaded.tokenizer.pad_token_id or 0,
        loaded.family.input_names,
    )
    batches = encoder.encode_all(examples, 32)
    store = RunStore(Path(tempfile.mkdtemp()) / "runs.sqlite")
    run_id = store.create_run({"model": model})

    def emit(event: Event) -> None:
        store.append(run_id, event)

    bare_times, kiln_times = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        for batch, _enc in batches:
            session.session.run(None, batch.arrays).__getitem__(0).argmax(-1)
        bare_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        evaluate(
            session,
            batches,
            examples,
            task=card.task,
            labels=card.labels,
            emit=emit,
            cancelled=lambda: False,
        )
        kiln_times.append(time.perf_counter() - start)
    bare, kiln = min(bare_times), min(kiln_times)
    return {
        "bare_s": bare,
        "kiln_s": kiln,
        "ratio": bare / kiln,
        "bare_trials_s": bare_times,
        "kiln_trials_s": kiln_times,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="zh-ner-tiny")
    parser.add_argument("--limit", type=int, help="first N test sentences (default: all)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    os.environ.setdefault("KILN_HOME", tempfile.mkdtemp(prefix="kiln-bench-"))

    figures: dict = {"model": args.model, "environment": environment()}
    print(
        f"Kiln bench/compare.py · model {args.model} · KILN_HOME {os.environ['KILN_HOME']}",
        file=sys.stderr,
    )
    baseline = pipeline_baseline(args.model, args.limit)
    kiln = kiln_run(args.model, "int8", "bucket", args.limit)
    fixed = kiln_run(args.model, "int8", "fixed", args.limit)
    fp32 = kiln_run(args.model, "fp32", "bucket", args.limit)
    harness = harness_overhead(args.model, args.limit)

    def eval_speed(result: dict) -> float:
        return result["examples"] / result["stages"]["evaluate"]

    figures |= {
        "pipeline_fp32": baseline,
        "kiln_int8_bucket": {
            "samples_per_s": eval_speed(kiln),
            "entity_f1": kiln["metrics"]["entity_f1"],
            "padding_waste": kiln["throughput"]["padding_waste"],
        },
        "kiln_int8_fixed": {
            "samples_per_s": eval_speed(fixed),
            "entity_f1": fixed["metrics"]["entity_f1"],
            "padding_waste": fixed["throughput"]["padding_waste"],
        },
        "kiln_fp32_bucket": {
            "samples_per_s": eval_speed(fp32),
            "entity_f1": fp32["metrics"]["entity_f1"],
        },
        "harness": harness,
    }
    checks = [
        (
            "Kiln int8+bucketing vs transformers pipeline fp32 (samples/s)",
            eval_speed(kiln) / baseline["samples_per_s"],
            f">= {TARGET_VS_PIPELINE}",
            eval_speed(kiln) / baseline["samples_per_s"] >= TARGET_VS_PIPELINE,
        ),
        (
            "Entity F1 drop vs the pipeline (points)",
            (baseline["entity_f1"] - kiln["metrics"]["entity_f1"]) * 100,
            f"<= {TARGET_F1_POINTS}",
            (baseline["entity_f1"] - kiln["metrics"]["entity_f1"]) * 100 <= TARGET_F1_POINTS,
        ),
        (
            "Kiln evaluate loop vs bare ORT loop (speed ratio)",
            harness["ratio"],
            f">= {TARGET_HARNESS}",
            harness["ratio"] >= TARGET_HARNESS,
        ),
        (
            "Bucketing vs fixed padding to the card's max (speed-up)",
            eval_speed(kiln) / eval_speed(fixed),
            "report",
            True,
        ),
        ("Kiln int8 vs Kiln fp32 (speed-up)", eval_speed(kiln) / eval_speed(fp32), "report", True),
    ]
    figures["checks"] = [{"name": n, "value": v, "target": t, "ok": ok} for n, v, t, ok in checks]
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
    else:
        env = figures["environment"]
        print(
            f"machine: {env['cpu']['model']} ({env['cpu']['usable_cores']} cores, "
            f"{', '.join(env['cpu']['flags'])}); "
            + ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v)
        )
        print(f"examples: {baseline['examples']}")
        print(
            f"  transformers pipeline fp32 : {baseline['samples_per_s']:9.1f} samples/s  "
            f"F1 {baseline['entity_f1']:.4f}"
        )
        for key, label in (
            ("kiln_int8_bucket", "Kiln int8, bucketing     "),
            ("kiln_int8_fixed", "Kiln int8, fixed padding "),
            ("kiln_fp32_bucket", "Kiln fp32, bucketing     "),
        ):
            row = figures[key]
            print(f"  {label}: {row['samples_per_s']:9.1f} samples/s  F1 {row['entity_f1']:.4f}")
        print(
            f"  harness: bare ORT {harness['bare_s'] * 1e3:.1f} ms, Kiln evaluate "
            f"{harness['kiln_s'] * 1e3:.1f} ms (best of {len(harness['bare_trials_s'])})"
        )
        for name, value, target, ok in checks:
            mark = "ok  " if ok else "MISS"
            print(f"[{mark}] {name}: {value:.3f} (target {target})")
    return 0 if all(ok for *_, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
