"""Kiln against what users run today, measured side by side in one process.

1. Kiln's evaluation of the built-in NER test split with the build it picks for this
   CPU (``--profile auto --precision auto``, what the app's demo runs; length
   bucketing, tokenisation overlapped) vs the transformers
   ``pipeline("token-classification")`` on the same model in fp32 with batch_size=32,
   tokenisation included. Target: >= 6x the pipeline's throughput, with entity F1
   within 1.0 point of the pipeline's. Kiln's ONNX Runtime int8 build is measured and
   reported beside it. The
   pipeline is given the same pre-split words (``is_split_into_words=True``), so both
   see identical model inputs; the pipeline on the raw sentence strings is measured too
   (its tokenizer then merges runs of digits and Latin letters into one token, which
   the model never saw in training, so its F1 is lower for reasons that are not speed).
2. Kiln's evaluation loop (decoding, live scores, events and checkpoints in a real run
   store) vs a bare ONNX Runtime loop on identical pre-tokenised batches, same session,
   trials interleaved: target >= 0.95 (Kiln's harness costs under 5%).
3. Fixed padding (the vendor guides pad every sentence to 256; a model with fewer
   positions is padded to its maximum) vs length bucketing, same int8 model: the
   speed-up.
4. Evaluation in random shards sorted inside (the default since intervals are watched
   mid-run) vs the whole split sorted by length, both cut into batches where the
   lengths jump: Kiln's evaluate() with tokenisation on its thread, same int8 session,
   timed trials interleaved: target >= 0.95 (shards keep bucketing's speed within 5%).
   ``--only-order`` runs this part alone.

Prints absolute figures, ratios against their targets, the machine and the versions.
Speed ratios are medians of interleaved pairs with a sign-test interval
(bench/paired.py): a target is met or missed only when the interval says so, otherwise
the check is "undecided"; exit 1 when a target is missed, 3 when one is undecided.
``python bench/compare.py [--model NAME] [--pairs N] [--close-pairs N]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiln_lab.core.environment import environment  # noqa: E402
from kiln_lab.core.runconfig import AUTO  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paired import Paired, exit_code, run_pairs  # noqa: E402

TARGET_VS_PIPELINE = 6.0
TARGET_F1_POINTS = 1.0
TARGET_HARNESS = 0.95
TARGET_ORDER = 0.95


VENDOR_FIXED_LENGTH = 256
"""What the vendor guides pad every sentence to."""


def kiln_run(
    model: str,
    precision: str,
    padding: str,
    limit: int | None,
    seq_len: int | None = None,
    order: str = "shards",
    profile: str = "cpu-onnxruntime",
) -> dict:
    from kiln_lab.core.pipeline import run_pipeline
    from kiln_lab.core.runconfig import RunConfig

    # paired=False: the evaluate stage's time is the evaluation alone, not the fp32 pass
    # an int8 run adds for its paired comparison.
    config = RunConfig(
        model=model,
        profile=profile,
        precision=precision,
        padding=padding,
        limit=limit,
        seq_len=seq_len,
        order=order,
        paired=False,
    )
    run_id = f"bench-{profile}-{precision}-{padding}-{order}"
    return run_pipeline(config, run_id, lambda event: None)


def order_cost(model: str, limit: int | None, trials: int = 9) -> dict:
    """Random shards vs the whole split sorted: Kiln's evaluate() as the evaluate stage
    calls it (tokenised on its thread, scored, stored), same session, timed pairs."""
    from kiln_lab.core.encode import draw_order, plan_batches, shard_ends, stream_batches

    bench = _Evaluation(model, limit)
    plans = {
        order: plan_batches(bench.examples, 32, "bucket", shards=order == "shards")
        for order in ("shards", "sorted")
    }

    def trial(order: str) -> Callable[[], float]:
        def run() -> float:
            bench.evaluate(
                stream_batches(bench.encoder, bench.examples, plans[order]),
                shard_ends=shard_ends(len(bench.examples), 32) if order == "shards" else (),
                draw_order=draw_order(len(bench.examples)),
            )
            return float(len(bench.examples))

        return run

    pair = run_pairs(
        ("random shards", trial("shards")),
        ("whole split sorted", trial("sorted")),
        pairs=trials,
        min_seconds=6.0,
    )
    waste = {order: bench.padding_waste(plan) for order, plan in plans.items()}
    return pair.to_dict(TARGET_ORDER) | {"ratio": pair.median, "padding_waste": waste}


def pipeline_baseline(model: str, limit: int | None, *, split_words: bool) -> dict:
    """The transformers pipeline, fp32 eager, batch 32, as users run it.

    ``split_words``: the data set's words (one per character here), as Kiln reads them;
    otherwise each sentence's joined string. Tags are read back per word from the
    character offsets of each word's first token.
    """
    import torch
    from transformers import pipeline

    from kiln_lab.core.data import load_builtin
    from kiln_lab.core.metrics import score_ner
    from kiln_lab.core.models import get_card, load_model

    card = get_card(model)
    loaded = load_model(card)
    examples = load_builtin(card.default_dataset).split("test").examples
    examples = examples[:limit] if limit else examples
    delimiter = " " if split_words else ""
    inputs = [list(ex.tokens) if split_words else "".join(ex.tokens) for ex in examples]
    ner = pipeline(
        "token-classification",
        model=loaded.model,
        tokenizer=loaded.tokenizer,
        device=-1,
        ignore_labels=[],
    )
    torch.set_num_threads(os.cpu_count() or 1)
    options = {"is_split_into_words": True, "delimiter": delimiter} if split_words else {}
    start = time.perf_counter()
    outputs = ner(inputs, batch_size=32, **options)
    elapsed = time.perf_counter() - start
    predicted = []
    for example, tokens in zip(examples, outputs, strict=True):
        starts, offset = {}, 0
        for index, word in enumerate(example.tokens):
            starts[offset] = index
            offset += len(word) + len(delimiter)
        tags: list[str | None] = [None] * len(example.tokens)
        for token in tokens:
            label = token["entity"]
            inside = label if label == "O" else "I-" + label[2:]
            # A word takes its first token's label; a token spanning several words (the
            # raw-text case: "1998" is one token) gives the later ones its I- tag.
            for char in range(token["start"], token["end"]):
                word = starts.get(char)
                if word is not None and tags[word] is None:
                    tags[word] = label if char == token["start"] else inside
        predicted.append([tag or "O" for tag in tags])
    scores = score_ner([list(ex.tags) for ex in examples], predicted)
    return {
        "samples_per_s": len(examples) / elapsed,
        "seconds": elapsed,
        "entity_f1": scores.overall.f1,
        "examples": len(examples),
        "inputs": "pre-split words" if split_words else "raw sentences",
    }


class _Evaluation:
    """Kiln's int8 build of ``model`` in one session, its test examples and a real run
    store: what the harness and order checks time, without a process per trial."""

    def __init__(self, model: str, limit: int | None) -> None:
        from kiln_lab.core.data import load_builtin
        from kiln_lab.core.encode import BatchEncoder
        from kiln_lab.core.models import get_card, load_model
        from kiln_lab.core.pipeline import run_pipeline
        from kiln_lab.core.runconfig import RunConfig
        from kiln_lab.core.runtimes.onnxruntime import OnnxRuntimeModel
        from kiln_lab.core.store import RunStore

        self.model, self.card = model, get_card(model)
        config = RunConfig(model=model, precision="int8", limit=8)
        result = run_pipeline(config, "h", lambda e: None)
        self.session = OnnxRuntimeModel(Path(result["quantization"]["path"]))
        loaded = load_model(self.card)
        examples = load_builtin(self.card.default_dataset).split("test").examples
        self.examples = examples[:limit] if limit else examples
        self.encoder = BatchEncoder(
            loaded.tokenizer,
            self.card.task,
            self.card.max_seq_len,
            loaded.tokenizer.pad_token_id or 0,
            loaded.family.input_names,
        )
        self.store = RunStore(Path(tempfile.mkdtemp()) / "runs.sqlite")

    def evaluate(self, batches: Iterator, **options: Any) -> None:
        """One evaluation as the evaluate stage runs it: events and checkpoints stored."""
        from kiln_lab.core.evaluate import evaluate
        from kiln_lab.core.events import Event

        run_id = self.store.create_run({"model": self.model})

        def emit(event: Event) -> None:
            self.store.append(run_id, event)

        evaluate(
            self.session,
            batches,
            self.examples,
            task=self.card.task,
            labels=self.card.labels,
            emit=emit,
            cancelled=lambda: False,
            checkpoint=lambda items: self.store.save_checkpoints(
                run_id, {f"evaluate/{n:06d}": v for n, v in items.items()}
            ),
            **options,
        )

    def padding_waste(self, plan: list[list[int]]) -> float:
        batches = [self.encoder.encode_batch(self.examples, indices)[0] for indices in plan]
        padded = sum(batch.padded_tokens for batch in batches)
        return 1 - sum(batch.real_tokens for batch in batches) / padded


def harness_overhead(model: str, limit: int | None, repeats: int = 9) -> dict:
    """Kiln's evaluate() (real store, checkpoints) vs a bare session loop, same batches."""
    bench = _Evaluation(model, limit)
    batches = bench.encoder.encode_all(bench.examples, 32)
    count = float(len(bench.examples))

    def bare() -> float:
        for batch, _enc in batches:
            bench.session.session.run(None, batch.arrays)[0].argmax(-1)
        return count

    def kiln() -> float:
        bench.evaluate(iter(batches))
        return count

    # Trials of several passes each: a pass is about 3.5 s, and one pass a side left the
    # per-pair ratios spread 3% around a 3% difference.
    pair = run_pairs(
        ("Kiln evaluate", kiln), ("bare ORT loop", bare), pairs=repeats, min_seconds=6.0
    )
    return pair.to_dict(TARGET_HARNESS) | {
        "ratio": pair.median,
        "kiln_s": count / statistics.median(pair.rates_a),
        "bare_s": count / statistics.median(pair.rates_b),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="zh-ner-tiny")
    parser.add_argument("--limit", type=int, help="first N test sentences (default: all)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--pairs",
        type=int,
        default=9,
        help="interleaved pairs for the headline ratio (9: the sign-test interval drops "
        "the lowest and highest ratio; 5 or fewer: it is their whole range)",
    )
    parser.add_argument(
        "--close-pairs",
        type=int,
        default=15,
        help="pairs for the harness and order checks, whose ratios sit within a few "
        "percent of their target (15: the interval drops the three lowest and highest)",
    )
    parser.add_argument(
        "--only-order", action="store_true", help="only part 4: random shards vs sorted"
    )
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    os.environ.setdefault("KILN_HOME", tempfile.mkdtemp(prefix="kiln-bench-"))
    if args.only_order:
        order = order_cost(args.model, args.limit, args.close_pairs)
        print(json.dumps(order, indent=2) if args.json else _order_line(order))
        return exit_code([order["verdict"]])
    from kiln_lab.core.models import get_card

    fixed_len = min(VENDOR_FIXED_LENGTH, get_card(args.model).max_seq_len)
    figures: dict = {"model": args.model, "environment": environment()}
    print(
        f"Kiln bench/compare.py · model {args.model} · KILN_HOME {os.environ['KILN_HOME']}",
        file=sys.stderr,
    )
    baseline = pipeline_baseline(args.model, args.limit, split_words=True)
    raw_text = pipeline_baseline(args.model, args.limit, split_words=False)
    # The first auto run probes every build (tens of seconds, cached); the pairs reuse it.
    best = kiln_run(args.model, AUTO, "bucket", args.limit, profile=AUTO)
    kiln = kiln_run(args.model, "int8", "bucket", args.limit)
    # The headline ratio in interleaved pairs: Kiln's evaluation against the faster way
    # of calling the pipeline, run after run, so a busy moment falls on both.
    split_words = baseline["samples_per_s"] >= raw_text["samples_per_s"]
    chosen = f"{best['profile']} {best['precision']}"
    versus = Paired(f"Kiln auto ({chosen}), bucketing", "transformers pipeline fp32")
    for index in range(args.pairs):
        runs = ("kiln", "pipeline") if index % 2 == 0 else ("pipeline", "kiln")
        for which in runs:
            if which == "kiln":
                again = kiln_run(args.model, AUTO, "bucket", args.limit, profile=AUTO)
                versus.rates_a.append(again["examples"] / again["stages"]["evaluate"])
            else:
                cell = pipeline_baseline(args.model, args.limit, split_words=split_words)
                versus.rates_b.append(cell["samples_per_s"])
    fixed = kiln_run(args.model, "int8", "fixed", args.limit, seq_len=fixed_len)
    fp32 = kiln_run(args.model, "fp32", "bucket", args.limit)
    harness = harness_overhead(args.model, args.limit, args.close_pairs)
    order = order_cost(args.model, args.limit, args.close_pairs)

    def row(result: dict) -> dict:
        # The evaluate stage's wall time: tokenisation, inference, decoding, scoring,
        # events and checkpoints, as `kiln run` reports it.
        return {
            "samples_per_s": result["examples"] / result["stages"]["evaluate"],
            "entity_f1": result["metrics"]["entity_f1"],
            "tokens_per_s": result["throughput"]["tokens_per_s"],
            "padding_waste": result["throughput"]["padding_waste"],
            "int8_recipe": (result.get("quantization") or {}).get("recipe"),
            "build": f"{result['profile']} {result['precision']}",
        }

    figures |= {
        "pipeline_fp32": baseline,
        "pipeline_fp32_raw_text": raw_text,
        "kiln_auto_bucket": row(best),
        "kiln_int8_bucket": row(kiln),
        "kiln_int8_fixed": row(fixed) | {"seq_len": fixed_len},
        "kiln_fp32_bucket": row(fp32),
        "harness": harness,
        "order": order,
        "vs_pipeline": versus.to_dict(TARGET_VS_PIPELINE),
    }
    speed = figures["kiln_int8_bucket"]["samples_per_s"]
    # Speed against the faster of the two ways to call the pipeline; accuracy against
    # the one that sees the same inputs as Kiln.
    fastest = max(baseline, raw_text, key=lambda cell: cell["samples_per_s"])
    f1_drop = (baseline["entity_f1"] - figures["kiln_auto_bucket"]["entity_f1"]) * 100
    checks = [
        (
            f"Kiln auto ({chosen}) vs transformers pipeline fp32 on {fastest['inputs']}, "
            f"the faster (samples/s, median of {args.pairs} pairs)",
            versus.median,
            f">= {TARGET_VS_PIPELINE}",
            versus.verdict(TARGET_VS_PIPELINE),
        ),
        (
            "Kiln ONNX Runtime int8 vs the pipeline (samples/s, one run each)",
            speed / fastest["samples_per_s"],
            "report",
            "report",
        ),
        (
            "Entity F1 drop of Kiln auto vs the pipeline on the same words (points)",
            f1_drop,
            f"<= {TARGET_F1_POINTS}",
            "met" if f1_drop <= TARGET_F1_POINTS else "missed",
        ),
        (
            "Kiln evaluate loop vs bare ORT loop (speed ratio, median of pairs)",
            harness["ratio"],
            f">= {TARGET_HARNESS}",
            harness["verdict"],
        ),
        (
            "Random shards vs the whole split sorted (speed ratio, median of pairs)",
            order["ratio"],
            f">= {TARGET_ORDER}",
            order["verdict"],
        ),
        (
            f"Bucketing vs fixed padding to {fixed_len} (speed-up)",
            speed / figures["kiln_int8_fixed"]["samples_per_s"],
            "report",
            "report",
        ),
        (
            "Kiln int8 vs Kiln fp32 (speed-up)",
            speed / figures["kiln_fp32_bucket"]["samples_per_s"],
            "report",
            "report",
        ),
    ]
    figures["checks"] = [
        {"name": n, "value": v, "target": t, "verdict": verdict} for n, v, t, verdict in checks
    ]
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
    else:
        print_figures(figures, checks, fixed_len)
    return exit_code([verdict for *_, verdict in checks if verdict != "report"])


def _pair_line(name: str, pair: dict) -> str:
    low, high = pair["interval"]
    return (
        f"  {name}: {pair['a']} / {pair['b']} median {pair['median_ratio']:.3f} over "
        f"{len(pair['ratios'])} pairs, 95% interval {low:.3f}-{high:.3f} "
        f"(ratios {', '.join(f'{r:.3f}' for r in pair['ratios'])})"
    )


def _order_line(order: dict) -> str:
    return _pair_line("order", order) + (
        f"; padding waste {order['padding_waste']['sorted']:.1%} sorted vs "
        f"{order['padding_waste']['shards']:.1%} shards"
    )


def print_figures(figures: dict, checks: list, fixed_len: int) -> None:
    env, harness = figures["environment"], figures["harness"]
    print(
        f"machine: {env['cpu']['model']} ({env['cpu']['usable_cores']} cores, "
        f"{', '.join(env['cpu']['flags'])}); "
        + ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v)
    )
    print(f"model {figures['model']}, {figures['pipeline_fp32']['examples']} test sentences")
    for key, label in (
        ("pipeline_fp32", "transformers pipeline fp32, words  "),
        ("pipeline_fp32_raw_text", "transformers pipeline fp32, raw text"),
    ):
        cell = figures[key]
        print(f"  {label}: {cell['samples_per_s']:8.1f} samples/s  F1 {cell['entity_f1']:.4f}")
    for key, label in (
        ("kiln_auto_bucket", "Kiln auto, bucketing                "),
        ("kiln_int8_bucket", "Kiln int8, bucketing                "),
        ("kiln_int8_fixed", f"Kiln int8, fixed padding to {fixed_len:<8}"),
        ("kiln_fp32_bucket", "Kiln fp32, bucketing                "),
    ):
        cell = figures[key]
        recipe = f", int8 {cell['int8_recipe']}" if cell["int8_recipe"] else ""
        recipe = f", {cell['build']}{recipe}"
        print(
            f"  {label}: {cell['samples_per_s']:8.1f} samples/s  F1 {cell['entity_f1']:.4f}  "
            f"({cell['tokens_per_s']:.0f} tokens/s, padding {cell['padding_waste']:.1%}{recipe})"
        )
    print(
        f"  harness: bare ORT {harness['bare_s'] * 1e3:.1f} ms, Kiln evaluate "
        f"{harness['kiln_s'] * 1e3:.1f} ms a pass (medians)"
    )
    print(_pair_line("harness", harness))
    print(_pair_line("vs pipeline", figures["vs_pipeline"]))
    print(_order_line(figures["order"]))
    for name, value, target, verdict in checks:
        print(f"[{verdict:9s}] {name}: {value:.3f} (target {target})")


if __name__ == "__main__":
    sys.exit(main())
