"""Paired, interleaved trials that give a verdict only when the noise allows one.

Timing two things once each on a shared 2-core machine measures the neighbours as much
as the code: a speed ratio of 0.95 against a target of 0.95 is a coin toss. So every
comparison in ``bench/`` runs as pairs, A then B then B then A (alternating, so a slow
drift of the machine falls on both sides), each trial long enough to be more than timer
and scheduler noise (``min_seconds``), and reads the *median of the per-pair ratios*
with a distribution-free confidence interval for that median (order statistics of the
ratios, the sign-test interval). A target is met when the whole interval is on its
side, missed when the whole interval is on the other, and otherwise the bench says
"undecided: machine too noisy" and exits with :data:`EXIT_UNDECIDED`, so a script can
tell a regression from a bad day.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

EXIT_MISSED = 1
EXIT_UNDECIDED = 3

Trial = Callable[[], float]
"""Runs the work once and returns how many units (samples, tokens) it did."""


def _rate(trial: Trial, min_seconds: float) -> float:
    """Units per second over at least ``min_seconds`` of repeated calls."""
    units, start = 0.0, time.perf_counter()
    while True:
        units += trial()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return units / elapsed


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free interval for the median: the order statistics x(k), x(n-k+1)
    with the largest k whose binomial(n, 1/2) tail stays within (1 - confidence) / 2.
    With fewer than 6 values no k qualifies and the interval is the whole range."""
    ordered = sorted(values)
    n = len(ordered)
    alpha = (1 - confidence) / 2
    k, tail = 0, 0.0
    while k < n // 2:
        tail += math.comb(n, k) / 2**n
        if tail > alpha:
            break
        k += 1
    k = max(k, 1)
    return ordered[k - 1], ordered[n - k]


@dataclass
class Paired:
    """Per-pair speed ratios of A over B (above 1: A is faster)."""

    a: str
    b: str
    rates_a: list[float] = field(default_factory=list)
    rates_b: list[float] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [x / y for x, y in zip(self.rates_a, self.rates_b, strict=True)]

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    @property
    def interval(self) -> tuple[float, float]:
        return median_interval(self.ratios)

    @property
    def spread_pct(self) -> float:
        low, high = self.interval
        return 100.0 * (high - low) / self.median if self.median else math.inf

    def verdict(self, target: float) -> str:
        """``met``, ``missed`` or ``undecided`` for "A/B is at least ``target``"."""
        low, high = self.interval
        if low >= target:
            return "met"
        if high < target:
            return "missed"
        return "undecided"

    def line(self, target: float | None = None) -> str:
        low, high = self.interval
        text = (
            f"{self.a} / {self.b}: median {self.median:.3f}x over {len(self.ratios)} pairs, "
            f"95% interval {low:.3f}-{high:.3f} (spread {self.spread_pct:.1f}%)"
        )
        if target is not None:
            text += f", target >= {target}: {self.verdict(target)}"
        return text

    def to_dict(self, target: float | None = None) -> dict[str, object]:
        low, high = self.interval
        return {
            "a": self.a,
            "b": self.b,
            "median_ratio": self.median,
            "interval": [low, high],
            "spread_pct": self.spread_pct,
            "ratios": self.ratios,
            "rates_a": self.rates_a,
            "rates_b": self.rates_b,
            "target": target,
            "verdict": self.verdict(target) if target is not None else None,
        }


def run_pairs(
    a: tuple[str, Trial], b: tuple[str, Trial], *, pairs: int = 7, min_seconds: float = 2.0
) -> Paired:
    """``pairs`` interleaved A/B trials (ABBA order), each of at least ``min_seconds``;
    one untimed call of each first (first-run allocations, lazy compilation)."""
    (name_a, trial_a), (name_b, trial_b) = a, b
    trial_a()
    trial_b()
    result = Paired(name_a, name_b)
    for index in range(pairs):
        if index % 2 == 0:
            rate_a = _rate(trial_a, min_seconds)
            rate_b = _rate(trial_b, min_seconds)
        else:
            rate_b = _rate(trial_b, min_seconds)
            rate_a = _rate(trial_a, min_seconds)
        result.rates_a.append(rate_a)
        result.rates_b.append(rate_b)
    return result


def exit_code(verdicts: list[str]) -> int:
    """0 when every target is met, EXIT_MISSED when one is missed, EXIT_UNDECIDED when
    none is missed but the noise decided nothing for at least one."""
    if "missed" in verdicts:
        return EXIT_MISSED
    if "undecided" in verdicts:
        return EXIT_UNDECIDED
    return 0
