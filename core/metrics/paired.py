"""A build against its fp32 reference on the same examples: the difference, paired.

Two scores measured on the same examples are strongly correlated (most examples are
right under both), so the interval of their difference is far narrower than two
separate intervals suggest; comparing them as if independent would call real int8
regressions noise. Accuracy differences use Newcombe's paired-score interval (method 10
of Newcombe 1998, built from Wilson intervals and the correlation of the pairs) and
McNemar's exact test on the discordant pairs; F1 differences use a paired bootstrap
(the same resampled sentences for both).

:func:`budget_verdict` is the accuracy guard's decision statistic: whether a drop is
distinguishable from zero, whether it exceeds the budget with confidence, and, when the
data cannot tell, about how many examples would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kiln_lab.core.metrics.intervals import (
    DEFAULT_CONFIDENCE,
    RESAMPLES,
    SEED,
    Interval,
    SentenceCounts,
    _ner_figures,
    resampled_sums,
    wilson,
)

if TYPE_CHECKING:
    from kiln_lab.core.metrics.outcomes import ClassificationOutcomes, NerOutcomes


@dataclass(frozen=True)
class PairedDifference:
    """``candidate - reference`` of one figure on the same examples, with its interval."""

    metric: str
    reference: float
    candidate: float
    interval: Interval
    examples: int
    p_value: float | None = None
    """McNemar's exact two-sided p-value (accuracy only)."""
    discordant: tuple[int, int] | None = None
    """(reference right and candidate wrong, reference wrong and candidate right)."""

    @property
    def difference(self) -> float:
        return self.candidate - self.reference

    @property
    def distinguishable(self) -> bool:
        """Whether the interval excludes zero: the two differ beyond sampling noise."""
        return not self.interval.contains(0.0)

    def to_dict(self) -> dict:
        out = {
            "metric": self.metric,
            "reference": self.reference,
            "candidate": self.candidate,
            "difference": self.difference,
            "interval": self.interval.to_dict(),
            "examples": self.examples,
            "distinguishable_from_zero": self.distinguishable,
        }
        if self.p_value is not None:
            out["mcnemar_p"] = self.p_value
        if self.discordant is not None:
            out["discordant"] = list(self.discordant)
        return out


def mcnemar_exact(worse: int, better: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of ``worse`` vs ``better`` at 1/2."""
    n = worse + better
    if n == 0:
        return 1.0
    k = min(worse, better)
    tail = (
        sum(
            math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1))
            for i in range(k + 1)
        )
        * 0.5**n
    )
    return min(1.0, 2 * tail)


def paired_accuracy(
    reference: np.ndarray, candidate: np.ndarray, confidence: float = DEFAULT_CONFIDENCE
) -> PairedDifference:
    """Accuracy difference of two boolean per-example outcome arrays (same examples)."""
    reference = np.asarray(reference, dtype=bool)
    candidate = np.asarray(candidate, dtype=bool)
    if reference.shape != candidate.shape:
        raise ValueError(f"{reference.shape[0]} reference outcomes, {candidate.shape[0]} candidate")
    n = int(reference.shape[0])
    both = int(np.count_nonzero(reference & candidate))
    worse = int(np.count_nonzero(reference & ~candidate))
    better = int(np.count_nonzero(~reference & candidate))
    neither = n - both - worse - better
    p1, p2 = (both + worse) / n if n else 0.0, (both + better) / n if n else 0.0
    l1, u1 = _bounds(wilson(both + worse, n, confidence))
    l2, u2 = _bounds(wilson(both + better, n, confidence))
    product = (both + worse) * (better + neither) * (both + better) * (worse + neither)
    phi = (both * neither - worse * better) / math.sqrt(product) if product else 0.0
    theta = p2 - p1
    low = theta - math.sqrt(
        max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2)
    )
    high = theta + math.sqrt(
        max(0.0, (u2 - p2) ** 2 - 2 * phi * (u2 - p2) * (p1 - l1) + (p1 - l1) ** 2)
    )
    return PairedDifference(
        "accuracy",
        p1,
        p2,
        Interval(max(-1.0, low), min(1.0, high), confidence, "newcombe"),
        n,
        p_value=mcnemar_exact(worse, better),
        discordant=(worse, better),
    )


def _bounds(interval: Interval) -> tuple[float, float]:
    return interval.low, interval.high


def paired_ner(
    reference: SentenceCounts,
    candidate: SentenceCounts,
    metric: str = "entity_f1",
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> PairedDifference:
    """Difference of an NER figure between two runs on the same sentences (same order),
    by paired bootstrap: each resample draws the same sentences for both."""
    if reference.sentences != candidate.sentences:
        raise ValueError(
            f"{reference.sentences} reference sentences, {candidate.sentences} candidate"
        )
    reference, candidate = _same_types(reference, candidate)
    ones = np.ones((1, reference.sentences))
    types = len(reference.types)
    point_ref = _ner_figures(ones @ reference.columns(), types)[metric][0]
    point_cand = _ner_figures(ones @ candidate.columns(), types)[metric][0]
    # Both runs' columns side by side: each resample draws the same sentences for both.
    both = np.hstack((candidate.columns(), reference.columns()))
    sums_cand, sums_ref = np.hsplit(resampled_sums(both, resamples, seed), 2)
    diffs = _ner_figures(sums_cand, types)[metric] - _ner_figures(sums_ref, types)[metric]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return PairedDifference(
        metric,
        float(point_ref),
        float(point_cand),
        Interval(float(low), float(high), confidence, "paired-bootstrap"),
        reference.sentences,
    )


def _same_types(a: SentenceCounts, b: SentenceCounts) -> tuple[SentenceCounts, SentenceCounts]:
    """Both runs' counts over the union of their entity types, in one column order."""
    names = tuple(dict.fromkeys(a.types + b.types))
    return _widen(a, names), _widen(b, names)


def _widen(counts: SentenceCounts, names: tuple[str, ...]) -> SentenceCounts:
    if counts.types == names:
        return counts
    place = [names.index(name) for name in counts.types]

    def spread(matrix: np.ndarray) -> np.ndarray:
        out = np.zeros((matrix.shape[0], len(names)), dtype=matrix.dtype)
        out[:, place] = matrix
        return out

    return SentenceCounts(
        spread(counts.true_positives),
        spread(counts.predicted),
        spread(counts.actual),
        counts.seen_tokens,
        counts.correct_tokens,
        names,
    )


@dataclass(frozen=True)
class BudgetVerdict:
    """What a paired difference says about an accuracy budget (drops in points)."""

    drop_points: float
    drop_low: float
    drop_high: float
    budget_points: float
    verdict: str
    """``within-noise`` (the drop is indistinguishable from zero), ``within-budget``
    (confidently no worse than the budget), ``over-budget`` (confidently worse), or
    ``undecided`` (the interval straddles the budget: too few examples to tell)."""
    examples: int
    examples_to_decide: int | None = None
    """About how many examples would make an ``undecided`` interval clear the budget."""

    @property
    def exceeded(self) -> bool:
        return self.verdict == "over-budget"

    def to_dict(self) -> dict:
        out = {
            "drop_points": self.drop_points,
            "drop_interval_points": [self.drop_low, self.drop_high],
            "budget_points": self.budget_points,
            "verdict": self.verdict,
            "examples": self.examples,
        }
        if self.examples_to_decide is not None:
            out["examples_to_decide"] = self.examples_to_decide
        return out

    def sentence(self) -> str:
        """One line for the log and the app."""
        spread = f"drop {self.drop_points:.2f} points [{self.drop_low:.2f}, {self.drop_high:.2f}]"
        if self.verdict == "within-noise":
            out = f"{spread}: within sampling noise (not distinguishable from no drop)"
            if self.examples_to_decide:
                out += (
                    f"; {self.examples} examples cannot tell whether the "
                    f"{self.budget_points:.2f}-point budget holds, about "
                    f"{self.examples_to_decide:,} would"
                )
            return out
        if self.verdict == "within-budget":
            return f"{spread}: within the {self.budget_points:.2f}-point budget with confidence"
        if self.verdict == "over-budget":
            return f"{spread}: over the {self.budget_points:.2f}-point budget with confidence"
        return (
            f"{spread}: {self.examples} examples cannot tell whether the "
            f"{self.budget_points:.2f}-point budget holds; about {self.examples_to_decide:,} would"
        )


def budget_verdict(difference: PairedDifference, budget_points: float) -> BudgetVerdict:
    """The guard's reading of a paired difference against a budget in points."""
    drop = -difference.difference * 100
    low, high = -difference.interval.high * 100, -difference.interval.low * 100
    if high <= budget_points:
        verdict = "within-budget"
    elif low > budget_points:
        verdict = "over-budget"
    elif low <= 0.0 <= high:
        verdict = "within-noise"
    else:
        verdict = "undecided"
    needed = None
    if verdict in ("undecided", "within-noise") and high > budget_points:
        half = max((high - low) / 2, 1e-9)
        gap = abs(drop - budget_points)
        # Interval half-widths shrink as 1/sqrt(n): the size at which it clears the budget.
        needed = math.ceil(difference.examples * (half / gap) ** 2) if gap > 1e-9 else None
    return BudgetVerdict(drop, low, high, budget_points, verdict, difference.examples, needed)


def paired_outcomes(
    reference: NerOutcomes | ClassificationOutcomes,
    candidate: NerOutcomes | ClassificationOutcomes,
    confidence: float = DEFAULT_CONFIDENCE,
) -> PairedDifference:
    """The headline figure's paired difference between two evaluations' outcomes on the
    same examples (entity F1 for NER, accuracy otherwise)."""
    from kiln_lab.core.metrics.outcomes import NerOutcomes

    if isinstance(reference, NerOutcomes) and isinstance(candidate, NerOutcomes):
        return paired_ner(reference.counts()[1], candidate.counts()[1], "entity_f1", confidence)
    if isinstance(reference, NerOutcomes) or isinstance(candidate, NerOutcomes):
        raise ValueError("cannot pair an NER evaluation with a classification one")
    return paired_accuracy(reference.counts()[1], candidate.counts()[1], confidence)
