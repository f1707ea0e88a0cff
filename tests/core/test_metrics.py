"""NER and classification metrics: hand cases, and equality with seqeval (and sklearn)."""

from __future__ import annotations

import json
import random
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from seqeval.metrics import (
    accuracy_score,
    classification_report,
    f1_score,
    precision_score,
    recall_score,
)
from seqeval.metrics.sequence_labeling import get_entities

from kiln_lab.core.errors import DataError
from kiln_lab.core.metrics import (
    EntityScore,
    RunningClassification,
    RunningNer,
    extract_entities,
    score_classification,
    score_ner,
)

BIO = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
IOBES = BIO + ["E-PER", "S-PER", "E-LOC", "S-LOC", "B", "I", "E", "S"]
TOL = 1e-12
PROPERTY = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def split_randomly(items: list, rng: random.Random) -> list[list]:
    """Cut ``items`` into consecutive batches of random sizes (empty batches included)."""
    batches, i = [], 0
    while i < len(items):
        size = rng.randint(0, 4)
        batches.append(items[i : i + size])
        i += size
    return batches


@st.composite
def tagged_corpus(draw, tags: list[str] = BIO) -> tuple[list[list[str]], list[list[str]]]:
    """1-6 sentences of 0-12 tokens, true and predicted tags drawn independently."""
    lengths = draw(st.lists(st.integers(0, 12), min_size=1, max_size=6))
    tag = st.sampled_from(tags)
    true = [draw(st.lists(tag, min_size=n, max_size=n)) for n in lengths]
    pred = [draw(st.lists(tag, min_size=n, max_size=n)) for n in lengths]
    return true, pred


# --- entity extraction -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["B-PER", "I-PER", "O", "B-LOC"], {("PER", 0, 1), ("LOC", 3, 3)}),
        (["O", "I-PER", "I-PER", "O"], {("PER", 1, 2)}),  # I- after O starts an entity
        (["I-PER", "I-PER"], {("PER", 0, 1)}),  # I- at the start too
        (["B-PER", "I-LOC"], {("PER", 0, 0), ("LOC", 1, 1)}),  # type change: two entities
        (["B-PER", "B-PER"], {("PER", 0, 0), ("PER", 1, 1)}),
        (["I-PER", "B-PER", "I-PER"], {("PER", 0, 0), ("PER", 1, 2)}),
        (["B-PER", "I-PER", "I-ORG", "I-ORG"], {("PER", 0, 1), ("ORG", 2, 3)}),
        (["O", "O"], set()),
        ([], set()),
        (
            ["B-PER", "E-PER", "S-LOC", "I-LOC", "E-LOC"],
            {("PER", 0, 1), ("LOC", 2, 2), ("LOC", 3, 4)},
        ),
        (["B", "I", "O", "S"], {("_", 0, 1), ("_", 3, 3)}),  # bare prefixes: type "_"
        (["B-PER-X", "I-PER-X"], {("PER-X", 0, 1)}),  # the type is everything after "B-"
    ],
)
def test_extract_entities_hand_cases(tags: list[str], expected: set) -> None:
    assert extract_entities(tags) == expected
    assert extract_entities(tags) == set(get_entities(list(tags)))


@pytest.mark.parametrize("bad", ["PER", "X", "[CLS]", "b-per", "BPER", "O-PER", ""])
def test_unsupported_tags_raise_data_error(bad: str) -> None:
    with pytest.raises(DataError, match="unsupported NER tag"):
        extract_entities(["O", bad])
    with pytest.raises(DataError, match="sentence 1"):
        score_ner([["O"], ["O", bad]], [["O"], ["O", "O"]])


def test_entities_do_not_cross_sentences() -> None:
    true = [["O", "B-PER"], ["I-PER", "O"]]
    pred = [["O", "B-PER"], ["O", "O"]]
    scores = score_ner(true, pred)
    # Two true PER entities (one per sentence), one predicted and correct.
    assert scores.per_type["PER"] == EntityScore(1.0, 0.5, 2 / 3, 2)


# --- NER scores vs seqeval -----------------------------------------------------------------


def _assert_matches_seqeval(true: list[list[str]], pred: list[list[str]]) -> None:
    ours = score_ner(true, pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seqeval's UndefinedMetricWarning on 0/0
        precision = precision_score(true, pred)
        recall = recall_score(true, pred)
        f1 = f1_score(true, pred)
        report = classification_report(true, pred, output_dict=True)
    assert ours.overall.precision == pytest.approx(precision, abs=TOL)
    assert ours.overall.recall == pytest.approx(recall, abs=TOL)
    assert ours.overall.f1 == pytest.approx(f1, abs=TOL)
    assert ours.overall.support == report["micro avg"]["support"]
    types = {k: v for k, v in report.items() if not k.endswith(" avg")}
    assert list(ours.per_type) == sorted(types)
    for name, row in types.items():
        score = ours.per_type[name]
        assert score.precision == pytest.approx(row["precision"], abs=TOL)
        assert score.recall == pytest.approx(row["recall"], abs=TOL)
        assert score.f1 == pytest.approx(row["f1-score"], abs=TOL)
        assert score.support == row["support"]
    tokens = sum(map(len, true))
    assert ours.tokens == tokens
    assert ours.sentences == len(true)
    if tokens:
        assert ours.token_accuracy == pytest.approx(accuracy_score(true, pred), abs=TOL)
    else:
        assert ours.token_accuracy == 0.0


@PROPERTY
@given(tagged_corpus())
def test_score_ner_equals_seqeval_on_bio(corpus) -> None:
    _assert_matches_seqeval(*corpus)


@PROPERTY
@given(tagged_corpus(IOBES))
def test_score_ner_equals_seqeval_on_iobes_and_bare_prefixes(corpus) -> None:
    _assert_matches_seqeval(*corpus)


def test_score_ner_hand_case() -> None:
    true = [["O", "O", "B-MISC", "I-MISC", "B-MISC", "O", "O"], ["B-PER", "I-PER", "O"]]
    pred = [["O", "O", "B-MISC", "I-MISC", "B-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    scores = score_ner(true, pred)
    assert scores.overall == EntityScore(2 / 3, 2 / 3, pytest.approx(2 / 3), 3)
    assert scores.per_type["MISC"] == EntityScore(0.5, 0.5, 0.5, 2)
    assert scores.per_type["PER"] == EntityScore(1.0, 1.0, 1.0, 1)
    assert scores.token_accuracy == 9 / 10
    data = scores.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["entity_f1"] == scores.overall.f1
    assert data["per_type"]["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert {"entity_precision", "entity_recall", "token_accuracy", "tokens", "sentences"} <= set(
        data
    )


def test_score_ner_empty_and_no_entities() -> None:
    for true, pred in [([], []), ([["O", "O"]], [["O", "O"]])]:
        scores = score_ner(true, pred)
        assert scores.overall == EntityScore(0.0, 0.0, 0.0, 0)
        assert scores.per_type == {}
    assert score_ner([], []).token_accuracy == 0.0


def test_score_ner_rejects_misaligned_input() -> None:
    with pytest.raises(DataError, match="2 true sentences but 1 predicted"):
        score_ner([["O"], ["O"]], [["O"]])
    with pytest.raises(DataError, match="sentence 1 has 2 true tags but 1 predicted"):
        score_ner([["O"], ["O", "O"]], [["O"], ["O"]])
    with pytest.raises(DataError, match="list of sentences"):
        score_ner(["B-PER", "O"], ["B-PER", "O"])  # a flat list of tags


@settings(max_examples=50, deadline=None, derandomize=True)
@given(tagged_corpus(), st.integers(0, 2**32))
def test_running_ner_equals_score_ner_in_any_batch_split(corpus, seed: int) -> None:
    true, pred = corpus
    rng = random.Random(seed)
    running = RunningNer()
    pairs = list(zip(true, pred, strict=True))
    for batch in split_randomly(pairs, rng):
        running.update([t for t, _ in batch], [p for _, p in batch])
        assert running.sentences <= len(true)
    assert running.sentences == len(true)
    assert running.snapshot() == score_ner(true, pred)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(tagged_corpus(IOBES), st.integers(0, 2**32))
def test_running_ner_from_per_sentence_counts_equals_score_ner(corpus, seed: int) -> None:
    """The evaluation loop's path: entities found once per batch (NerOutcomes), the
    pooled counts added from their column sums, equal seqeval's scores."""
    import numpy as np

    from kiln_lab.core.metrics.outcomes import NerOutcomes

    true, pred = corpus
    running = RunningNer()
    outcomes = NerOutcomes(running.table)
    pairs = list(zip(true, pred, strict=True))
    start = 0
    for batch in split_randomly(pairs, random.Random(seed)):
        truth, guess = [t for t, _ in batch], [p for _, p in batch]
        codes, predicted = running.table.encode(truth), running.table.encode(guess)
        lengths = np.array([len(t) for t in truth], dtype=np.int64)
        counts = outcomes.add(range(start, start + len(batch)), codes, predicted, lengths)
        running.add_sentence_counts(counts)
        start += len(batch)
    assert running.snapshot() == score_ner(true, pred)


def test_running_ner_bad_batch_changes_nothing() -> None:
    running = RunningNer()
    running.update([["B-PER", "I-PER"]], [["B-PER", "I-PER"]])
    before = running.snapshot()
    with pytest.raises(DataError, match="sentence 2"):
        running.update([["O"], ["O", "X"]], [["O"], ["O", "O"]])
    with pytest.raises(DataError, match="sentence 1 has"):
        running.update([["O"]], [["O", "O"]])
    assert running.snapshot() == before
    assert running.sentences == 1


# --- classification --------------------------------------------------------------------------


def test_classification_hand_case_with_a_class_never_predicted() -> None:
    true = ["a", "a", "b", "b", "c"]
    pred = ["a", "b", "b", "b", "a"]
    scores = score_classification(true, pred)
    assert scores.accuracy == 3 / 5
    assert scores.count == 5
    assert list(scores.per_class) == ["a", "b", "c"]
    # a: tp 1, predicted 2, true 2 -> 1/2, 1/2, 1/2
    assert scores.per_class["a"] == EntityScore(0.5, 0.5, 0.5, 2)
    # b: tp 2, predicted 3, true 2 -> 2/3, 1, 0.8
    assert scores.per_class["b"] == EntityScore(2 / 3, 1.0, 0.8, 2)
    # c: never predicted -> 0, 0, 0
    assert scores.per_class["c"] == EntityScore(0.0, 0.0, 0.0, 1)
    assert scores.macro_f1 == pytest.approx((0.5 + 0.8 + 0.0) / 3, abs=TOL)
    data = scores.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["per_class"]["b"]["f1"] == pytest.approx(0.8)


def test_classification_with_labels() -> None:
    true = ["pos", "pos", "neg", "maybe"]
    pred = ["pos", "neg", "neg", "pos"]
    scores = score_classification(true, pred, labels=["pos", "neg", "neutral"])
    assert list(scores.per_class) == ["pos", "neg", "neutral"]  # order of labels
    assert scores.per_class["neutral"] == EntityScore(0.0, 0.0, 0.0, 0)
    # pos: tp 1, pred 2, true 2 -> f1 .5; neg: tp 1, pred 2, true 1 -> f1 2/3; neutral 0.
    assert scores.macro_f1 == pytest.approx((0.5 + 2 / 3 + 0.0) / 3, abs=TOL)
    assert scores.accuracy == 2 / 4  # "maybe" counts towards accuracy only


def test_classification_edges() -> None:
    empty = score_classification([], [])
    assert (empty.accuracy, empty.macro_f1, empty.count, empty.per_class) == (0.0, 0.0, 0, {})
    with pytest.raises(DataError, match="2 true labels but 1 predicted"):
        score_classification(["a", "b"], ["a"])
    with pytest.raises(DataError, match="not a string"):
        score_classification("ab", "ab")
    with pytest.raises(DataError, match="non-empty"):
        score_classification(["a"], ["a"], labels=[])


LABELS = st.sampled_from(["neg", "pos", "neutral", "x"])


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.lists(st.tuples(LABELS, LABELS), max_size=40), st.integers(0, 2**32))
def test_running_classification_equals_score_in_any_batch_split(pairs, seed: int) -> None:
    true = [t for t, _ in pairs]
    pred = [p for _, p in pairs]
    running = RunningClassification()
    for batch in split_randomly(pairs, random.Random(seed)):
        running.update([t for t, _ in batch], [p for _, p in batch])
    assert running.count == len(pairs)
    assert running.snapshot() == score_classification(true, pred)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    st.lists(st.tuples(LABELS, LABELS), min_size=1, max_size=40),
    st.sampled_from([None, ["neg", "pos"], ["pos", "neg", "neutral", "x", "unseen"]]),
)
def test_classification_equals_sklearn(pairs, labels) -> None:
    """sklearn comes with seqeval; when present, it is the reference for macro F1."""
    metrics = pytest.importorskip("sklearn.metrics")
    true = [t for t, _ in pairs]
    pred = [p for _, p in pairs]
    ours = score_classification(true, pred, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        macro = metrics.f1_score(true, pred, labels=labels, average="macro", zero_division=0)
        per_class = metrics.f1_score(true, pred, labels=labels, average=None, zero_division=0)
    assert ours.macro_f1 == pytest.approx(float(macro), abs=TOL)
    assert ours.accuracy == pytest.approx(metrics.accuracy_score(true, pred), abs=TOL)
    names = labels if labels is not None else sorted(set(true) | set(pred))
    assert [s.f1 for s in ours.per_class.values()] == pytest.approx(list(per_class), abs=TOL)
    assert list(ours.per_class) == names
