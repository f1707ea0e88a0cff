"""Issue 16 end to end on tiny models: the per-language table of a sentence-pair file with
a language column, intervals in the result, the paired difference of an int8 build, and
``--until`` stopping early with an interval that holds the full evaluation's figure."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import pytest
import yaml

from kiln_lab.core.errors import ConfigError
from kiln_lab.core.pipeline import run_pipeline
from kiln_lab.core.runconfig import RunConfig
from tests.conftest import _card, build_tiny_model

PAIR_LABELS = ["entailment", "neutral", "contradiction"]
LANGUAGES = ["de", "en", "sw"]


@pytest.fixture(scope="module")
def pair_model(tiny_assets: Path) -> str:
    """A tiny XLM-R sentence-pair model with a card carrying per-language figures."""
    name = "tiny-pair-xlmr"
    build_tiny_model(
        tiny_assets / "models" / name,
        family="xlm-roberta",
        task="sentence-pair-classification",
        labels=PAIR_LABELS,
    )
    card = _card(name, "xlm-roberta", "sentence-pair-classification", PAIR_LABELS, "xnli")
    card["reference"][0] |= {"runtime": "paper", "per_language": {"de": 0.79, "en": 0.86}}
    (tiny_assets / "cards" / f"{name}.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    return name


def _xnli_file(path: Path, rows: int = 90) -> Path:
    rng = random.Random(3)
    words = ["haus", "house", "nyumba", "water", "maji", "wasser", "red", "blue", "tree"]
    lines = ["premise\thypothesis\tlabel\tlanguage"]
    for i in range(rows):
        premise = " ".join(rng.choice(words) for _ in range(rng.randint(3, 9)))
        hypothesis = " ".join(rng.choice(words) for _ in range(rng.randint(2, 6)))
        lines.append(f"{premise}\t{hypothesis}\t{rng.choice(PAIR_LABELS)}\t{LANGUAGES[i % 3]}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.slow
def test_a_sentence_pair_file_with_languages_gives_the_language_table(
    pair_model: str, kiln_home: Path, tmp_path: Path
) -> None:
    data = _xnli_file(tmp_path / "pairs.tsv")
    config = RunConfig(model=pair_model, dataset_file=str(data), dataset_format="xnli")
    result = run_pipeline(config, "pairs", lambda event: None)
    metrics = result["metrics"]
    table = metrics["per_language"]
    assert sorted(table) == LANGUAGES and sum(row["count"] for row in table.values()) == 90
    for row in table.values():
        assert row["interval"]["low"] <= row["accuracy"] <= row["interval"]["high"]
        assert row["interval"]["method"] == "wilson"
    overall = metrics["intervals"]["accuracy"]
    assert overall["low"] <= metrics["accuracy"] <= overall["high"] and metrics["complete"]
    (figure,) = result["reference"]
    assert figure["measured_per_language"] == {k: v["accuracy"] for k, v in table.items()}
    assert figure["per_language"] == {"de": 0.79, "en": 0.86}
    assert figure["delta"] is None  # the card's figure is from XNLI, not this file


@pytest.mark.slow
def test_int8_carries_the_paired_difference(pair_model: str, kiln_home: Path, tmp_path: Path):
    data = _xnli_file(tmp_path / "pairs.tsv", rows=60)
    config = RunConfig(
        model=pair_model, dataset_file=str(data), dataset_format="xnli", precision="int8"
    )
    result = run_pipeline(config, "pairs-int8", lambda event: None)
    paired = result["metrics"]["paired"]
    # (a file without a dev split holds a part apart for the guard: examples < 60)
    assert paired["metric"] == "accuracy" and paired["examples"] == result["examples"]
    assert paired["interval"]["method"] == "newcombe"
    assert paired["interval"]["low"] <= paired["difference"] <= paired["interval"]["high"]
    assert paired["candidate"] == pytest.approx(result["metrics"]["accuracy"])
    assert paired["budget"]["verdict"] in (
        "within-noise",
        "within-budget",
        "undecided",
        "over-budget",
    )


@pytest.mark.slow
def test_until_stops_at_a_shard_boundary_and_holds_the_full_figure(
    tiny_assets: Path, kiln_home: Path
) -> None:
    from kiln_lab.core.encode import shard_ends

    full = run_pipeline(
        RunConfig(model="tiny-ner-bert", limit=1200, batch_size=8), "full", lambda e: None
    )["metrics"]
    stopped = run_pipeline(
        RunConfig(model="tiny-ner-bert", limit=1200, batch_size=8, until=0.25),
        "until",
        lambda e: None,
    )["metrics"]
    stop = stopped["early_stop"]
    assert stop["after"] < 1200 and stop["after"] in shard_ends(1200, 8)
    assert not stopped["complete"] and full["complete"]
    assert stop["interval"]["high"] - stop["interval"]["low"] <= 0.25
    assert stop["interval"]["low"] <= full["entity_f1"] <= stop["interval"]["high"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"confidence": 1.0}, "confidence must be between"),
        ({"until": 0.0}, "0-1 scale"),
        ({"until": 0.05, "perf_only": True}, "scores none"),
        ({"until": 0.05, "order": "sorted"}, "random shards"),
    ],
)
def test_interval_options_are_checked_up_front(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RunConfig(model="m", **options)


def test_plan_shards_are_random_and_sorted_inside() -> None:
    from kiln_lab.core.data import TokenExample
    from kiln_lab.core.encode import SHARD_BATCHES, plan_batches

    rng = np.random.default_rng(0)
    examples = [TokenExample(("x",) * int(n), ("O",) * int(n)) for n in rng.integers(1, 60, 300)]
    plan = plan_batches(examples, 4, "bucket", shards=True)
    flat = [i for batch in plan for i in batch]
    assert sorted(flat) == list(range(300))
    assert all(1 <= len(batch) <= 4 for batch in plan)
    first = 4 * SHARD_BATCHES
    assert first in itertools.accumulate(map(len, plan))  # a whole batch closes the shard
    shard = flat[:first]
    lengths = [len(examples[i].tokens) for i in shard]
    assert lengths == sorted(lengths)  # sorted inside a shard ...
    assert shard != sorted(range(300), key=lambda i: len(examples[i].tokens))[: len(shard)]
    assert plan == plan_batches(examples, 4, "bucket", shards=True)  # ... and the same each run
    # The second shard (up to twice the first) is the rest here, sorted inside too.
    second = [len(examples[i].tokens) for i in flat[first:]]
    assert len(second) == 300 - first and second == sorted(second)
    assert lengths[-1] > second[0]  # a new shard starts again from short sentences


def test_shards_double_so_their_padding_grows_with_the_log_of_the_split() -> None:
    from kiln_lab.core.data import TokenExample
    from kiln_lab.core.encode import SHARD_BATCHES, plan_batches, shard_ends, shard_sizes

    assert shard_sizes(15 * SHARD_BATCHES, 1) == [SHARD_BATCHES * 2**k for k in range(4)]
    rng = np.random.default_rng(1)
    examples = [TokenExample(("x",) * int(n), ("O",) * int(n)) for n in rng.integers(1, 90, 4000)]

    def padded(plan: list[list[int]]) -> int:
        return sum(len(b) * max(len(examples[i].tokens) for i in b) for b in plan)

    def every(size: int, plan: list[list[int]]) -> list[list[int]]:
        flat = [i for batch in plan for i in batch]
        return [flat[k : k + size] for k in range(0, len(flat), size)]

    whole = padded(plan_batches(examples, 8, "bucket"))
    sharded = plan_batches(examples, 8, "bucket", shards=True)
    # 4,000 sentences in batches of up to 8: shards of 256, 512, 1,024, 2,048 and the
    # rest, each closed by a whole batch.
    ends = list(itertools.accumulate(map(len, sharded)))
    assert sorted(shard_ends(4000, 8)) == [256, 768, 1792, 3840, 4000]
    assert shard_ends(4000, 8) <= set(ends)
    # Sixteen shards of 256 would pad 2.6% more than sorting the whole split; five, 0.7%.
    assert padded(sharded) < 1.015 * whole
    # Cutting where the lengths jump pads less than cutting every 8, sorted or sharded.
    assert padded(sharded) < padded(every(8, sharded))
    assert whole < padded(every(8, plan_batches(examples, 8, "bucket")))
    # Without a call cost (a tool run per call, an accelerator) every batch is full.
    full = plan_batches(examples, 8, "bucket", call_cost=None)
    assert full == every(8, plan_batches(examples, 8, "bucket"))


def test_cutting_by_length_pads_least_for_its_call_cost() -> None:
    """The cuts are optimal: no other way to cut (checked exhaustively on short runs)
    costs less in padded tokens plus the per-batch cost."""
    from kiln_lab.core.encode import cut_by_length

    def cost(lengths: list[int], cuts: list[int], call: float) -> float:
        bounds = [0, *cuts, len(lengths)]
        return sum((b - a) * lengths[b - 1] + call for a, b in itertools.pairwise(bounds))

    rng = np.random.default_rng(3)
    for _ in range(30):
        lengths = sorted(rng.integers(1, 40, int(rng.integers(1, 11))).tolist())
        size, call = int(rng.integers(1, 5)), float(rng.choice([0.0, 3.0, 16.0]))
        cuts = cut_by_length(lengths, size, call)
        bounds = [0, *cuts, len(lengths)]
        assert all(0 < b - a <= size for a, b in itertools.pairwise(bounds))
        every = [
            list(c)
            for k in range(len(lengths))
            for c in itertools.combinations(range(1, len(lengths)), k)
            if all(b - a <= size for a, b in itertools.pairwise([0, *c, len(lengths)]))
        ]
        assert cost(lengths, cuts, call) == min(cost(lengths, c, call) for c in every)
    assert cut_by_length([5] * 10, 4) == [2, 6]  # equal lengths: the fewest batches
    assert cut_by_length([], 4) == []


def _difference(low: float, high: float, point: float, examples: int = 400):
    from kiln_lab.core.metrics.intervals import Interval
    from kiln_lab.core.metrics.paired import PairedDifference

    return PairedDifference(
        "accuracy", 0.9, 0.9 + point, Interval(low, high, 0.95, "newcombe"), examples
    )


@pytest.mark.parametrize(
    ("low", "high", "point", "verdict", "chased"),
    [
        (-0.004, 0.002, -0.001, "within-budget", False),  # drop [-0.2, 0.4] pts, budget 1
        (-0.025, 0.003, -0.011, "within-noise", False),  # a 1.1-pt drop that is noise
        (-0.040, -0.020, -0.030, "over-budget", True),  # confidently worse than 1 pt
        (-0.030, -0.002, -0.016, "undecided", True),  # real, but straddles the budget
    ],
)
def test_the_guard_chases_only_what_the_paired_interval_shows(
    low: float, high: float, point: float, verdict: str, chased: bool
) -> None:
    from kiln_lab.core.guard import _within
    from kiln_lab.core.metrics.paired import budget_verdict

    reading = budget_verdict(_difference(low, high, point), 1.0)
    assert reading.verdict == verdict
    assert _within(-point * 100, 1.0, reading) is not chased
    if verdict in ("within-noise", "undecided"):
        # Too few examples to tell: it says how many would.
        assert reading.examples_to_decide and reading.examples_to_decide > 400
        assert f"{reading.examples_to_decide:,}" in reading.sentence()


def test_the_apps_stop_key_stops_at_the_next_shard_boundary() -> None:
    """The app's "stop evaluating" request ends the evaluation at a shard boundary with
    the figures so far and the whole split's interval, like --until does by width."""
    from kiln_lab.core.encode import SHARD_BATCHES, draw_order, plan_batches, shard_ends
    from tests.core.test_evaluate import NER_LABELS, SeededLogits, _ner_setup, _run

    examples, encoder = _ner_setup(300)
    plan = plan_batches(examples, 4, "bucket", shards=True)
    batches = [encoder.encode_batch(examples, indices) for indices in plan]
    asked = []
    result = _run(
        SeededLogits(len(NER_LABELS)),
        batches,
        examples,
        shard_ends=shard_ends(len(examples), 4),
        draw_order=draw_order(len(examples)),
        stop_requested=lambda: asked.append(1) or True,
    )
    stop = result.accuracy["early_stop"]
    assert stop["after"] == 4 * SHARD_BATCHES and stop["requested"] and len(asked) == 1
    assert result.accuracy["sentences"] == 4 * SHARD_BATCHES and not result.accuracy["complete"]
    assert stop["interval"]["low"] <= stop["interval"]["high"]


def test_the_store_keeps_a_stop_request_apart_from_a_cancel(tmp_path: Path) -> None:
    from kiln_lab.core.store import RunStore
    from kiln_lab.core.worker import CancelFlag

    store = RunStore(tmp_path / "runs.sqlite")
    run_id = store.create_run({"model": "m"})
    flag = CancelFlag(store, run_id)
    store.request_stop_evaluation(run_id)
    assert store.stop_evaluation_requested(run_id) and flag.stop_evaluation()
    assert not store.cancel_requested(run_id) and not flag()
    assert not store.run(run_id).cancel_requested
    store.request_cancel(run_id)  # a cancel wins over a stop request
    assert store.cancel_requested(run_id) and not store.stop_evaluation_requested(run_id)


@pytest.mark.parametrize(
    ("profile", "cuts"),
    [
        ("cpu-onnxruntime", True),
        ("cpu-openvino", False),  # compiles every new shape: full batches, fewer shapes
        ("cpu-polygraphy", False),  # a tool run per call
        ("cuda-onnxruntime", False),  # not measured on an accelerator
    ],
)
def test_only_onnxruntime_on_the_cpu_cuts_batches_by_length(profile: str, cuts: bool) -> None:
    from kiln_lab.core.encode import CALL_COST_TOKENS
    from kiln_lab.core.profiles import get_profile
    from kiln_lab.core.runtimes import get_runtime

    chosen = get_profile(profile)
    cost = get_runtime(chosen.runtime).batch_call_cost(chosen)
    assert cost == (CALL_COST_TOKENS if cuts else None)
