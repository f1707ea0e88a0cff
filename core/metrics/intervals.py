"""Confidence intervals for the accuracy figures, from per-example outcomes.

A figure measured on 400 sentences is a sample, not a constant: these intervals say how
far the same model could score on another draw of the same kind of data. The
independent unit is the *example* (a sentence for NER, not its tokens: entities and
errors cluster within sentences), so every interval is computed from per-example
counts, never from the pooled figure alone.

- classification accuracy: Wilson score interval (good coverage down to tens of samples,
  unlike the Wald interval, and never outside [0, 1]);
- entity F1, precision, recall, token accuracy (ratios of sums over sentences):
  percentile bootstrap over sentences (Poisson weights, :func:`resampled_sums`).
  Resampling is a matrix product of resample weights with the per-sentence count
  columns, a block of resamples at a time, so 1,000 resamples of 5,000 sentences cost
  about twenty milliseconds;
- paired differences (a build against its fp32 reference on the same examples) are in
  :mod:`kiln_lab.core.metrics.paired`, the anytime-valid interval used to stop early in
  :mod:`kiln_lab.core.metrics.sequential`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from threadpoolctl import threadpool_limits

DEFAULT_CONFIDENCE = 0.95
RESAMPLES = 1000
SEED = 20_240_607
"""Bootstrap draws are seeded so the same outcomes give the same interval on every run."""


@dataclass(frozen=True)
class Interval:
    """A two-sided interval ``[low, high]`` at ``confidence`` for one figure."""

    low: float
    high: float
    confidence: float
    method: str
    """``wilson``, ``bootstrap``, ``newcombe``, ``paired-bootstrap`` or ``confidence-sequence``."""

    @property
    def width(self) -> float:
        return self.high - self.low

    def contains(self, value: float) -> bool:
        return self.low - 1e-12 <= value <= self.high + 1e-12

    def to_dict(self) -> dict[str, float | str]:
        return {
            "low": self.low,
            "high": self.high,
            "confidence": self.confidence,
            "method": self.method,
        }


def check_confidence(confidence: float) -> float:
    """``confidence`` if it is a probability strictly between 0.5 and 1; else ValueError."""
    if not 0.5 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0.5 and 1 (exclusive), got {confidence}")
    return confidence


def z_value(confidence: float) -> float:
    """The two-sided normal quantile: 1.96 for 0.95."""
    return NormalDist().inv_cdf(0.5 + check_confidence(confidence) / 2)


def wilson(successes: int, count: int, confidence: float = DEFAULT_CONFIDENCE) -> Interval:
    """Wilson score interval for a binomial proportion (``[0, 1]`` for no samples)."""
    if count <= 0:
        return Interval(0.0, 1.0, confidence, "wilson")
    z = z_value(confidence)
    p = successes / count
    denominator = 1 + z * z / count
    centre = (p + z * z / (2 * count)) / denominator
    half = z * math.sqrt(p * (1 - p) / count + z * z / (4 * count * count)) / denominator
    return Interval(max(0.0, centre - half), min(1.0, centre + half), confidence, "wilson")


def resample_counts(count: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """A ``resamples x count`` matrix: how often each example is drawn in each resample.

    Multiplying it with per-example count columns gives every resample's sums at once;
    :func:`resampled_sums` does that without holding the whole matrix.
    """
    return np.vstack(list(_count_blocks(count, resamples, seed)))


RESAMPLE_BLOCK = 128
"""Resamples drawn at a time: a block's weights (about 4 MB for 4,000 sentences) are
reused from block to block, where one ``resamples x count`` matrix is tens of MB of
fresh pages whose first touch cost more than the arithmetic (0.8 s of a 4.7 s
evaluation of the demo's 4,471 sentences)."""

_POISSON_LEVELS = 1 << 16
_POISSON_TABLE = np.searchsorted(
    np.cumsum([math.exp(-1) / math.factorial(k) for k in range(16)]),
    (np.arange(_POISSON_LEVELS) + 0.5) / _POISSON_LEVELS,
).astype(np.float64)
"""Poisson(1) by inverse CDF over 16-bit uniforms: every probability within 2^-16."""


def _count_blocks(count: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Each example's weight in each resample, :data:`RESAMPLE_BLOCK` resamples at a time.

    The Poisson bootstrap: every example is drawn a Poisson(1) number of times,
    independently, where the classic bootstrap draws ``count`` examples with replacement
    (a multinomial). Every figure here is a ratio of sums, which does not care that a
    resample's size then varies, and the two agree as the sample grows (Hanley and
    MacGibbon, "Creating non-parametric bootstrap samples using Poisson frequencies",
    2006; Chamandy et al., "Estimating uncertainty for massive data streams", 2012).
    Weights come from one table lookup per example, with no sort or count: the interval
    of the demo's 4,471 sentences took 22 ms instead of 65 ms
    (``tests/core/test_intervals_coverage.py`` checks its coverage). One generator read
    block after block yields the same stream as one big draw, so the intervals do not
    depend on the block size.
    """
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, RESAMPLE_BLOCK):
        rows = min(RESAMPLE_BLOCK, resamples - start)
        uniform = rng.integers(0, _POISSON_LEVELS, size=(rows, count), dtype=np.uint16)
        yield _POISSON_TABLE[uniform]


def resampled_sums(columns: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """Every bootstrap resample's column sums: ``resamples x columns.shape[1]``, equal to
    ``resample_counts(len(columns)) @ columns`` (weights are integers, so exactly).

    One BLAS thread: these products are small, and they run right after the model's
    last batch, while its runtime's threads still hold (and spin on) every core. Two
    OpenBLAS threads fighting ONNX Runtime's made the demo's final intervals take
    45 ms instead of 29 (two cores); alone, one thread is as fast as two."""
    columns = np.asarray(columns, dtype=np.float64)
    with threadpool_limits(limits=1, user_api="blas"):
        blocks = _count_blocks(len(columns), resamples, seed)
        return np.vstack([block @ columns for block in blocks])


def f1_from_sums(true_positives: np.ndarray, predicted: np.ndarray, actual: np.ndarray) -> dict:
    """Precision, recall and F1 (seqeval's arithmetic, 0 where undefined) from sums."""
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, true_positives / predicted, 0.0)
        recall = np.where(actual > 0, true_positives / actual, 0.0)
        total = precision + recall
        f1 = np.where(total > 0, 2 * precision * recall / total, 0.0)
    return {"precision": precision, "recall": recall, "f1": f1}


def _percentile(values: np.ndarray, confidence: float, method: str = "bootstrap") -> Interval:
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(float(low), float(high), confidence, method)


@dataclass(frozen=True)
class SentenceCounts:
    """Per-sentence counts, one row per sentence, from which every NER figure is a ratio
    of column sums: entities true / predicted / both (per type too), and tokens seen /
    correct. Built by :class:`kiln_lab.core.metrics.outcomes.NerOutcomes`."""

    true_positives: np.ndarray
    """sentences x types."""
    predicted: np.ndarray
    actual: np.ndarray
    seen_tokens: np.ndarray
    """sentences: tokens the model saw (truncated ones left out)."""
    correct_tokens: np.ndarray
    types: tuple[str, ...]

    @property
    def sentences(self) -> int:
        return int(self.seen_tokens.shape[0])

    def take(self, rows: np.ndarray) -> SentenceCounts:
        return SentenceCounts(
            self.true_positives[rows],
            self.predicted[rows],
            self.actual[rows],
            self.seen_tokens[rows],
            self.correct_tokens[rows],
            self.types,
        )

    def columns(self) -> np.ndarray:
        """Every count as one ``sentences x (3 * types + 2)`` matrix, for resampling."""
        return np.column_stack(
            (
                self.true_positives,
                self.predicted,
                self.actual,
                self.seen_tokens,
                self.correct_tokens,
            )
        ).astype(np.float64)


def _ner_figures(sums: np.ndarray, types: int) -> dict[str, np.ndarray]:
    """Overall and per-type P/R/F1 and token accuracy from column sums (rows: resamples)."""
    tp, pred, actual = sums[:, :types], sums[:, types : 2 * types], sums[:, 2 * types : 3 * types]
    seen, correct = sums[:, 3 * types], sums[:, 3 * types + 1]
    overall = f1_from_sums(tp.sum(1), pred.sum(1), actual.sum(1))
    each = f1_from_sums(tp, pred, actual)
    with np.errstate(divide="ignore", invalid="ignore"):
        token_accuracy = np.where(seen > 0, correct / seen, 0.0)
    return {
        "entity_f1": overall["f1"],
        "entity_precision": overall["precision"],
        "entity_recall": overall["recall"],
        "token_accuracy": token_accuracy,
        **{f"{name}/{i}": values[:, i] for name, values in each.items() for i in range(types)},
    }


def ner_intervals(
    counts: SentenceCounts,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> dict:
    """Bootstrap intervals over sentences for every NER figure, overall and per type.

    Returns ``{"entity_f1": Interval, ..., "per_type": {type: {"f1": Interval, ...}}}``.
    """
    check_confidence(confidence)
    if counts.sentences == 0:
        return {}
    figures = _ner_figures(resampled_sums(counts.columns(), resamples, seed), len(counts.types))
    out: dict = {
        name: _percentile(figures[name], confidence)
        for name in ("entity_f1", "entity_precision", "entity_recall", "token_accuracy")
    }
    out["per_type"] = {
        name: {
            figure: _percentile(figures[f"{figure}/{i}"], confidence)
            for figure in ("precision", "recall", "f1")
        }
        for i, name in enumerate(counts.types)
    }
    return out


def classification_intervals(
    correct: np.ndarray,
    groups: Mapping[str, np.ndarray] | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
) -> dict:
    """Wilson intervals for accuracy, overall and per group (e.g. per language).

    ``correct`` holds one boolean per example; each group is a boolean mask over them.
    """
    out: dict = {"accuracy": wilson(int(correct.sum()), int(correct.shape[0]), confidence)}
    if groups:
        out["per_language"] = {
            name: wilson(int(correct[mask].sum()), int(mask.sum()), confidence)
            for name, mask in groups.items()
        }
    return out


def class_intervals(
    true: np.ndarray,
    pred: np.ndarray,
    names: Sequence[str],
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> dict:
    """Bootstrap intervals over examples for macro F1 and each class's P/R/F1.

    ``true`` and ``pred`` are class indices into ``names`` (-1: a label outside them,
    which counts for no class, as ``RunningClassification`` with labels does).
    """
    check_confidence(confidence)
    count, classes = int(true.shape[0]), len(names)
    if count == 0 or classes == 0:
        return {}
    rows = np.arange(count)
    actual = np.zeros((count, classes))
    predicted = np.zeros((count, classes))
    actual[rows[true >= 0], true[true >= 0]] = 1
    predicted[rows[pred >= 0], pred[pred >= 0]] = 1
    hits = actual * predicted
    sums = resampled_sums(np.hstack((hits, predicted, actual)), resamples, seed)
    tp, pred_sums, true_sums = np.split(sums, 3, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(pred_sums > 0, tp / pred_sums, 0.0)
        recall = np.where(true_sums > 0, tp / true_sums, 0.0)
        f1 = np.where(pred_sums + true_sums > 0, 2 * tp / (pred_sums + true_sums), 0.0)
    return {
        "macro_f1": _percentile(f1.mean(1), confidence),
        "per_class": {
            name: {
                "precision": _percentile(precision[:, i], confidence),
                "recall": _percentile(recall[:, i], confidence),
                "f1": _percentile(f1[:, i], confidence),
            }
            for i, name in enumerate(names)
        },
    }


def as_dicts(intervals: Mapping) -> dict:
    """Nested intervals as plain JSON-able dicts."""
    return {
        key: value.to_dict() if isinstance(value, Interval) else as_dicts(value)
        for key, value in intervals.items()
    }
