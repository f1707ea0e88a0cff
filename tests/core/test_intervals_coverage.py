"""The intervals are honest: simulated evaluations with a known true accuracy and F1.

Each test draws many evaluation streams from a population whose true figure is known
in closed form, builds the interval Kiln would report, and counts how often it holds
the truth. Measured coverages are printed (``pytest -s``) and must sit near the nominal
95%: a fixed-sample interval within [0.93, 0.975], paired differences too, and the
anytime-valid sequence at or above 95% at *every* look, also when the evaluation stops
as soon as it is narrow enough, where a fixed-sample interval recomputed at each look
falls well below.
"""

from __future__ import annotations

import numpy as np

from kiln_lab.core.metrics.intervals import SentenceCounts, ner_intervals, wilson
from kiln_lab.core.metrics.paired import paired_accuracy, paired_ner
from kiln_lab.core.metrics.sequential import MIN_EXAMPLES, half_width, ratio_sigma, split_bounds

NOMINAL = 0.95
ALPHA = 1 - NOMINAL


def _report(name: str, covered: np.ndarray) -> float:
    coverage = float(np.mean(covered))
    print(f"coverage {name}: {coverage:.3f} over {covered.size} simulated evaluations")
    return coverage


# -- a population of sentences with known entity figures -----------------------------------
MEAN_ENTITIES = 1.2
RECALL = 0.85
MEAN_FALSE = 0.25
MISS_MORE = 0.04
"""The candidate (an "int8 build") loses this share of the reference's true positives."""


def _true_f1(recall: float) -> float:
    """F1 of the population: 2 E[tp] / (E[predicted] + E[actual])."""
    tp = recall * MEAN_ENTITIES
    return 2 * tp / (tp + MEAN_FALSE + MEAN_ENTITIES)


def _sentences(rng: np.random.Generator, count: int) -> tuple[SentenceCounts, SentenceCounts]:
    """A reference and a candidate on the same ``count`` sentences (one entity type)."""
    actual = rng.poisson(MEAN_ENTITIES, count)
    tp = rng.binomial(actual, RECALL)
    false = rng.poisson(MEAN_FALSE, count)
    tokens = rng.integers(5, 40, count)
    correct = tokens - rng.binomial(tokens, 0.05)
    lost = rng.binomial(tp, MISS_MORE)

    def counts(true_positives: np.ndarray) -> SentenceCounts:
        column = lambda v: v[:, None]  # noqa: E731
        return SentenceCounts(
            column(true_positives),
            column(true_positives + false),
            column(actual),
            tokens,
            correct,
            ("PER",),
        )

    return counts(tp), counts(tp - lost)


def test_fixed_sample_coverage_wilson_accuracy() -> None:
    rng = np.random.default_rng(1)
    truth = 0.9
    for n in (60, 400):
        hits = rng.binomial(n, truth, 4000)
        covered = np.array([wilson(int(k), n).contains(truth) for k in hits])
        assert 0.93 <= _report(f"Wilson accuracy, n={n}", covered) <= 0.975


def test_fixed_sample_coverage_bootstrap_f1() -> None:
    rng = np.random.default_rng(2)
    truth = _true_f1(RECALL)
    covered = []
    for _ in range(300):
        reference, _ = _sentences(rng, 300)
        covered.append(ner_intervals(reference, resamples=400)["entity_f1"].contains(truth))
    assert 0.92 <= _report("bootstrap entity F1, 300 sentences", np.array(covered)) <= 0.98


def test_paired_coverage_accuracy_and_f1() -> None:
    rng = np.random.default_rng(3)
    # Accuracy: the reference is right 90% of the time; the candidate breaks 3% of
    # examples and fixes 1%: a true difference of -2 points.
    n, worse, better = 400, 0.03, 0.01
    covered = []
    for _ in range(3000):
        draw = rng.random(n)
        reference = draw < 0.9
        candidate = reference.copy()
        flip = rng.random(n)
        candidate[reference & (flip < worse / 0.9)] = False
        candidate[~reference & (flip < better / 0.1)] = True
        covered.append(paired_accuracy(reference, candidate).interval.contains(better - worse))
    assert 0.93 <= _report("paired accuracy (Newcombe), n=400", np.array(covered)) <= 0.975

    truth = _true_f1(RECALL * (1 - MISS_MORE)) - _true_f1(RECALL)
    covered = []
    for _ in range(300):
        reference, candidate = _sentences(rng, 300)
        covered.append(paired_ner(reference, candidate, resamples=400).interval.contains(truth))
    assert _report("paired bootstrap F1 difference, 300 sentences", np.array(covered)) >= 0.92


def _streams(rng: np.random.Generator, runs: int, length: int) -> dict[str, np.ndarray]:
    """``runs`` entity streams as running sums (runs x length) of the ratio's y and x."""
    actual = rng.poisson(MEAN_ENTITIES, (runs, length))
    tp = rng.binomial(actual, RECALL)
    y = 2.0 * tp
    x = (tp + rng.poisson(MEAN_FALSE, (runs, length)) + actual).astype(np.float64)
    return {
        "count": np.arange(1, length + 1)[None, :],
        "sum_y": y.cumsum(1),
        "sum_x": x.cumsum(1),
        "sum_yy": (y * y).cumsum(1),
        "sum_xx": (x * x).cumsum(1),
        "sum_xy": (x * y).cumsum(1),
    }


def test_anytime_valid_coverage_under_continuous_monitoring() -> None:
    rng = np.random.default_rng(4)
    length, truth = 2000, _true_f1(RECALL)
    sums = _streams(rng, 1000, length)
    looks = np.arange(MIN_EXAMPLES, length + 1, 32) - 1  # every 32 examples: a batch
    value = sums["sum_y"][:, looks] / sums["sum_x"][:, looks]
    sigma = ratio_sigma(
        *(sums[k][:, looks] for k in ("count", "sum_y", "sum_x")),
        *(sums[k][:, looks] for k in ("sum_yy", "sum_xx", "sum_xy")),
    )
    t = looks + 1
    half = half_width(t, sigma, ALPHA, optimised_for=length)
    inside = np.abs(value - truth) <= half
    sequence = _report("confidence sequence, held at every look", inside.all(1))
    naive_half = 1.959964 * sigma / np.sqrt(t)
    naive = _report(
        "fixed-sample interval, held at every look", (np.abs(value - truth) <= naive_half).all(1)
    )
    assert sequence >= NOMINAL
    assert naive < 0.8  # why a watched interval must be a sequence

    # Stop as soon as the sequence is narrower than 0.06; is the truth inside then?
    narrow = 2 * half <= 0.06
    assert narrow.any(1).all(), "every stream should reach the width before its end"
    stop = narrow.argmax(1)
    rows = np.arange(value.shape[0])
    stopped = np.abs(value[rows, stop] - truth) <= half[rows, stop]
    early = _report("confidence sequence at the early stop (width 0.06)", stopped)
    print(f"stopped after {int(np.median(t[stop]))} examples (median) of {length}")
    assert early >= NOMINAL
    naive_stop = (2 * naive_half <= 0.06).argmax(1)
    naive_stopped = np.abs(value[rows, naive_stop] - truth) <= naive_half[rows, naive_stop]
    _report("fixed-sample interval at its own early stop (width 0.06)", naive_stopped)


def test_split_sequence_covers_the_full_split_figure_and_early_stops_keep_it() -> None:
    """The early stop's interval (sampling the split without replacement) is about the
    split's own figure, what the full evaluation would have said: it must hold that
    figure at every look, and at the look where the run stops."""
    rng = np.random.default_rng(5)
    runs, size = 600, 2000
    actual = rng.poisson(MEAN_ENTITIES, (runs, size))
    tp = rng.binomial(actual, RECALL)
    y = 2.0 * tp
    x = (tp + rng.poisson(MEAN_FALSE, (runs, size)) + actual).astype(np.float64)
    split_figure = y.sum(1) / x.sum(1)  # each row is one split, already in random order
    low, high = split_bounds(y, x, size)
    looks = np.arange(MIN_EXAMPLES, size + 1, 32) - 1
    inside = (low[:, looks] <= split_figure[:, None]) & (split_figure[:, None] <= high[:, looks])
    assert _report("split confidence sequence, held at every look", inside.all(1)) >= NOMINAL
    width = high[:, looks] - low[:, looks]
    narrow = width <= 0.05
    assert narrow.any(1).all()
    stop = narrow.argmax(1)
    rows = np.arange(runs)
    print(f"split sequence: width 0.05 after {int(np.median(looks[stop] + 1))} of {size} (median)")
    assert _report("split confidence sequence at the early stop", inside[rows, stop]) >= NOMINAL


def test_resampling_in_blocks_draws_exactly_the_one_big_matrix() -> None:
    """The block-wise sums equal one ``resamples x count`` draw of weights times the
    columns, for resample counts under, at and across the block size."""
    from kiln_lab.core.metrics.intervals import RESAMPLE_BLOCK, resample_counts, resampled_sums

    columns = np.random.default_rng(1).integers(0, 9, size=(301, 5)).astype(np.float64)
    for resamples in (1, RESAMPLE_BLOCK, 2 * RESAMPLE_BLOCK + 3):
        weights = resample_counts(301, resamples, seed=7)
        assert weights.shape == (resamples, 301)
        assert np.array_equal(resampled_sums(columns, resamples, seed=7), weights @ columns)


def test_resample_weights_are_poisson_one() -> None:
    """Each example's weight is Poisson(1): the classic bootstrap's draw count in the
    limit, independently per example (mean 1, variance 1, P(0) = 1/e)."""
    from math import exp, factorial

    from kiln_lab.core.metrics.intervals import resample_counts

    weights = resample_counts(2000, 500, seed=3)
    assert np.array_equal(weights, np.round(weights)) and weights.min() == 0
    assert abs(weights.mean() - 1) < 0.005 and abs(weights.var() - 1) < 0.01
    for k in range(4):
        assert abs(np.mean(weights == k) - exp(-1) / factorial(k)) < 0.003
