"""An interval that stays valid while someone watches it: a confidence sequence.

An operator (or ``--until WIDTH``) looks at the interval every few batches and stops
when it is narrow enough. A fixed-sample 95% interval recomputed at each look covers
the truth far less than 95% of the time once stopping depends on it (the more looks,
the worse). A *confidence sequence* holds at every sample size at once, so stopping
whenever it is narrow enough keeps its coverage.

Every accuracy figure Kiln reports is a ratio of sums over examples, ``R = Σy / Σx``
(accuracy: ``y`` = correct, ``x`` = 1; entity F1: ``y`` = 2 x true positives,
``x`` = predicted + true entities; token accuracy: correct / seen tokens). Its
influence terms ``(y_i - R x_i) / mean(x)`` have mean zero and a variance estimated
from running sums, and the asymptotic confidence sequence of Waudby-Smith, Arbour,
Sinha, Kennedy and Ramdas ("Time-uniform central limit theory and asymptotic confidence
sequences", 2021; Robbins' normal-mixture boundary with a plug-in variance) is

    R ± σ̂ sqrt( 2 (t ρ² + 1) / (t² ρ²) · log( sqrt(t ρ² + 1) / α ) )

with ``ρ`` tuned so the sequence is narrowest at ``t*`` examples (the planned total).
Only running sums are kept: updating and reading it is O(1), so the live pane can draw
it at every refresh. Valid when examples arrive in random order, which is why the
evaluation runs in randomly drawn shards (``core.encode.plan_batches``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from kiln_lab.core.metrics.intervals import DEFAULT_CONFIDENCE, Interval, check_confidence

MIN_EXAMPLES = 100
"""No interval is narrow enough to stop on before this many examples: the plug-in
variance of a handful of examples (all correct, say) can be zero."""


def rho_squared(alpha: float, optimised_for: int) -> float:
    """The mixture's tuning that makes the sequence narrowest at ``optimised_for``."""
    log_term = -2 * math.log(alpha)
    return (log_term + math.log(log_term + 1)) / max(1, optimised_for)


def half_width(t: ArrayLike, sigma: ArrayLike, alpha: float, optimised_for: int) -> np.ndarray:
    """The boundary's half width after ``t`` examples with standard deviation ``sigma``
    (numpy arrays welcome: a simulation reads thousands of streams at once)."""
    t = np.maximum(np.asarray(t, dtype=np.float64), 1e-12)
    rho2 = rho_squared(alpha, optimised_for)
    scale = t * rho2 + 1
    return np.asarray(sigma) * np.sqrt(2 * scale / (t * t * rho2) * np.log(np.sqrt(scale) / alpha))


def ratio_sigma(
    count: ArrayLike,
    sum_y: ArrayLike,
    sum_x: ArrayLike,
    sum_yy: ArrayLike,
    sum_xx: ArrayLike,
    sum_xy: ArrayLike,
) -> np.ndarray:
    """Standard deviation of the influence terms of ``Σy / Σx`` from running sums; never
    below that of a proportion seen with one pseudo-success and one pseudo-failure (a
    floor, so a short run of all-correct examples does not give a zero-width interval)."""
    n = np.maximum(np.asarray(count, dtype=np.float64), 1.0)
    sum_x = np.asarray(sum_x, dtype=np.float64)
    safe_x = np.where(sum_x > 0, sum_x, 1.0)
    ratio = np.asarray(sum_y) / safe_x
    mean_x = safe_x / n
    variance = (np.asarray(sum_yy) - 2 * ratio * sum_xy + ratio * ratio * sum_xx) / n
    variance = np.maximum(variance, 0.0) / (mean_x * mean_x)
    variance = np.where(sum_x > 0, variance, 0.25)
    return np.sqrt(np.maximum(variance, 1 / (4 * (n + 2))))


@dataclass
class RatioStream:
    """Running sums of ``y``, ``x`` and their squares and product, for one ratio figure."""

    count: int = 0
    sum_y: float = 0.0
    sum_x: float = 0.0
    sum_yy: float = 0.0
    sum_xx: float = 0.0
    sum_xy: float = 0.0

    def add(self, y: np.ndarray, x: np.ndarray) -> None:
        """Add examples (one ``y`` and ``x`` value each)."""
        y = np.asarray(y, dtype=np.float64)
        x = np.asarray(x, dtype=np.float64)
        self.count += int(y.shape[0])
        self.sum_y += float(y.sum())
        self.sum_x += float(x.sum())
        self.sum_yy += float(y @ y)
        self.sum_xx += float(x @ x)
        self.sum_xy += float(y @ x)

    @property
    def value(self) -> float:
        return self.sum_y / self.sum_x if self.sum_x else 0.0

    def sigma(self) -> float:
        return float(
            ratio_sigma(self.count, self.sum_y, self.sum_x, self.sum_yy, self.sum_xx, self.sum_xy)
        )

    def interval(
        self, confidence: float = DEFAULT_CONFIDENCE, optimised_for: int | None = None
    ) -> Interval:
        """The confidence sequence at the examples seen so far, clipped to ``[0, 1]``."""
        alpha = 1 - check_confidence(confidence)
        if not self.count:
            return Interval(0.0, 1.0, confidence, "confidence-sequence")
        half = float(half_width(self.count, self.sigma(), alpha, optimised_for or self.count))
        value = self.value
        return Interval(
            max(0.0, value - half), min(1.0, value + half), confidence, "confidence-sequence"
        )


def narrow_enough(stream: RatioStream, width: float, interval: Interval) -> bool:
    """Whether an evaluation may stop: enough examples seen and the sequence this narrow."""
    return stream.count >= MIN_EXAMPLES and interval.width <= width


def split_interval(
    y: np.ndarray,
    x: np.ndarray,
    population: int,
    confidence: float = DEFAULT_CONFIDENCE,
    optimised_for: int | None = None,
) -> Interval:
    """A confidence sequence for the *whole split's* ratio ``Σy / Σx``, from the first
    ``t`` examples of a random order of the split's ``population`` examples (``y`` and
    ``x`` in the order drawn).

    What an early stop wants to know is what the full evaluation would have said.
    Drawing without replacement from a finite split, each draw's expected value is the
    mean of what is left, which the draws so far reveal; the martingale of Waudby-Smith
    and Ramdas ("Confidence sequences for sampling without replacement", 2020) uses
    that, and the interval shrinks to the split's exact figure as ``t`` nears
    ``population``. For a ratio: ``Z_i(R) = y_i - R x_i`` has mean zero over the split
    exactly at the split's ``R``, and ``M_t(R) = Σ_i (Z_i + S^Z_{i-1} / (N - i + 1))``
    is then a martingale, linear in ``R``; the same normal-mixture boundary as
    :class:`RatioStream` (with the plug-in spread of ``Z``) bounds it at every ``t``.
    """
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if y.shape[0] == 0 or not x.sum():
        return Interval(0.0, 1.0, confidence, "confidence-sequence-split")
    low, high = split_bounds(y, x, population, confidence, optimised_for)
    return Interval(float(low[-1]), float(high[-1]), confidence, "confidence-sequence-split")


def split_bounds(
    y: np.ndarray,
    x: np.ndarray,
    population: int,
    confidence: float = DEFAULT_CONFIDENCE,
    optimised_for: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`split_interval` after every prefix at once: ``y`` and ``x`` are ``(..., t)``
    arrays in the order drawn (a simulation passes thousands of streams as rows)."""
    alpha = 1 - check_confidence(confidence)
    t = np.arange(1, y.shape[-1] + 1, dtype=np.float64)
    weights = 1.0 / (population - t + 1)
    sum_y, sum_x = np.cumsum(y, -1), np.cumsum(x, -1)
    before_y = sum_y - y
    before_x = sum_x - x
    a_y = np.cumsum(y + before_y * weights, -1)
    a_x = np.cumsum(x + before_x * weights, -1)
    safe_x = np.where(sum_x > 0, sum_x, 1.0)
    ratio = sum_y / safe_x
    # Spread of y - R x over the prefix (its mean is zero at the prefix's own ratio).
    spread = (
        np.cumsum(y * y, -1) - 2 * ratio * np.cumsum(x * y, -1) + ratio**2 * np.cumsum(x * x, -1)
    ) / t
    mean_x = sum_x / t
    sigma = np.sqrt(np.maximum(spread, mean_x * mean_x / (4 * (t + 2))))
    bound = t * half_width(t, sigma, alpha, optimised_for or population)
    safe_a = np.where(a_x > 0, a_x, 1.0)
    low = np.where(a_x > 0, np.maximum(0.0, (a_y - bound) / safe_a), 0.0)
    high = np.where(a_x > 0, np.minimum(1.0, (a_y + bound) / safe_a), 1.0)
    return low, high
