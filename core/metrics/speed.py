"""Latency quantiles and throughput, in bounded memory, with an injectable clock.

An evaluation or benchmark can run for hours; these keep a fixed amount of state
however long the run, so a live pane can ask for figures a few times a second. Neither
class sleeps or reads a clock it was not given, so tests drive them with a fake clock.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np

Clock = Callable[[], float]


class LatencyRecorder:
    """Per-batch latencies, summarised as mean, p50/p90/p99 and max.

    Keeps a uniform reservoir sample (Algorithm R, seeded, so runs are reproducible) of
    at most ``capacity`` latencies: quantiles are exact while ``count <= capacity`` and
    an unbiased estimate after. Count, mean and max are always exact.
    """

    def __init__(self, capacity: int = 10_000, seed: int = 0) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self._capacity = capacity
        self._sample = np.empty(capacity, dtype=np.float64)
        self._rng = random.Random(seed)
        self._count = 0
        self._total = 0.0
        self._max = -math.inf

    @property
    def count(self) -> int:
        """Latencies added so far (not only those kept)."""
        return self._count

    @property
    def exact(self) -> bool:
        """True while every latency is kept, so quantiles are exact."""
        return self._count <= self._capacity

    def add(self, seconds: float) -> None:
        """Record one latency in seconds (a finite value >= 0)."""
        seconds = float(seconds)
        if not (seconds >= 0.0 and math.isfinite(seconds)):
            raise ValueError(f"a latency must be a finite number of seconds >= 0, got {seconds}")
        self._count += 1
        self._total += seconds
        self._max = max(self._max, seconds)
        if self._count <= self._capacity:
            self._sample[self._count - 1] = seconds
        else:
            slot = self._rng.randrange(self._count)
            if slot < self._capacity:
                self._sample[slot] = seconds

    def quantiles(self, qs: Sequence[float]) -> list[float]:
        """Several quantiles at once (one sort), in seconds; nan for each if empty."""
        for q in qs:
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"a quantile must be in [0, 1], got {q}")
        if self._count == 0:
            return [math.nan] * len(qs)
        kept = self._sample[: min(self._count, self._capacity)]
        values = np.percentile(kept, [q * 100.0 for q in qs], method="linear")
        return [float(v) for v in values]

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (``q`` in [0, 1]) in seconds, linear interpolation; nan if empty."""
        return self.quantiles([q])[0]

    def summary(self) -> dict[str, float | int]:
        """``count`` and mean/p50/p90/p99/max in milliseconds (nan when nothing was added)."""
        p50, p90, p99 = self.quantiles([0.5, 0.9, 0.99])
        empty = self._count == 0
        return {
            "count": self._count,
            "mean_ms": math.nan if empty else self._total / self._count * 1e3,
            "p50_ms": p50 * 1e3,
            "p90_ms": p90 * 1e3,
            "p99_ms": p99 * 1e3,
            "max_ms": math.nan if empty else self._max * 1e3,
        }


class ThroughputMeter:
    """Samples (and tokens) per second over the whole run and over a sliding window.

    Timing starts when the meter is built, or again at ``start()`` (which also forgets
    what was recorded: call it after warm-up batches). Each ``add`` reports one finished
    batch; its samples are spread evenly over the time since the previous ``add`` (or
    the start), which is when that batch was being worked on.

    - Overall rate: total samples / ``elapsed_s``, where ``elapsed_s`` is wall-clock time
      from the start to the last ``add``. It does not decay once the run has finished.
    - Window rate: samples done in the last ``window_s`` seconds up to *now* (the part
      of each batch's interval that falls in the window), divided by the window length
      (or the time since the start, if shorter). It falls towards 0 when a run stalls,
      and is smooth even when one batch takes longer than the window.
    """

    def __init__(self, window_s: float = 5.0, clock: Clock = time.perf_counter) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        self._window_s = float(window_s)
        self._clock = clock
        self.start()

    def start(self) -> None:
        """Start (or restart) timing now, forgetting everything recorded so far."""
        self._origin = self._clock()
        self._last = self._origin
        self._samples = 0
        self._tokens = 0
        self._padded_tokens = 0
        self._batches = 0
        # (interval start, interval end, samples) for the batches that may overlap the window
        self._recent: deque[tuple[float, float, int]] = deque()

    def add(self, samples: int, tokens: int = 0, padded_tokens: int = 0) -> float:
        """Record one finished batch: its sample count, real tokens and padded tokens.

        Returns the batch's interval (seconds since the previous ``add`` or the start),
        which a resumable evaluation checkpoints so a later attempt can :meth:`credit` it.
        """
        if samples < 0 or tokens < 0 or padded_tokens < 0:
            raise ValueError("samples, tokens and padded_tokens must be >= 0")
        now = self._clock()
        interval = now - self._last
        self._recent.append((self._last, now, samples))
        self._last = now
        self._samples += samples
        self._tokens += tokens
        self._padded_tokens += padded_tokens
        self._batches += 1
        horizon = now - self._window_s
        while self._recent and self._recent[0][1] < horizon:
            self._recent.popleft()
        return interval

    def credit(
        self, samples: int, tokens: int, padded_tokens: int, elapsed_s: float, batches: int
    ) -> None:
        """Count work an earlier attempt did (a resumed run's checkpointed batches).

        The overall figures then cover the whole evaluation: the earlier attempt's
        ``elapsed_s`` is added to this one's by moving the start back. The window rate
        is unaffected, as that work did not happen in the last ``window_s`` seconds.
        """
        if min(samples, tokens, padded_tokens, batches) < 0 or not elapsed_s >= 0:
            raise ValueError("credited figures must be >= 0")
        self._origin -= elapsed_s
        self._samples += samples
        self._tokens += tokens
        self._padded_tokens += padded_tokens
        self._batches += batches

    @property
    def samples(self) -> int:
        """Samples recorded since the start."""
        return self._samples

    def elapsed_s(self) -> float:
        """Seconds from the start to the last ``add`` (0.0 before any)."""
        return self._last - self._origin

    def samples_per_s(self) -> float:
        """Samples / ``elapsed_s()``; 0.0 before any time has elapsed."""
        elapsed = self.elapsed_s()
        return self._samples / elapsed if elapsed > 0 else 0.0

    def tokens_per_s(self) -> float:
        """Real (unpadded) tokens / ``elapsed_s()``; 0.0 before any time has elapsed."""
        elapsed = self.elapsed_s()
        return self._tokens / elapsed if elapsed > 0 else 0.0

    def window_samples_per_s(self) -> float:
        """Samples per second over the last ``window_s`` seconds up to now."""
        now = self._clock()
        low = max(now - self._window_s, self._origin)
        span = now - low
        if span <= 0:
            return 0.0
        done = 0.0
        for begin, end, samples in self._recent:
            if end <= low:
                continue
            if end <= begin:  # two adds at the same clock reading: count it whole
                done += samples
                continue
            overlap = min(end, now) - max(begin, low)
            if overlap > 0:
                done += samples * overlap / (end - begin)
        return done / span

    def padding_waste(self) -> float:
        """Share of processed token positions that were padding: 1 - real / padded."""
        return 1.0 - self._tokens / self._padded_tokens if self._padded_tokens else 0.0

    def summary(self) -> dict[str, float | int]:
        """The overall figures, plus ``window_samples_per_s`` and ``batches`` for live panes."""
        return {
            "samples": self._samples,
            "samples_per_s": self.samples_per_s(),
            "tokens_per_s": self.tokens_per_s(),
            "padding_waste": self.padding_waste(),
            "elapsed_s": self.elapsed_s(),
            "window_samples_per_s": self.window_samples_per_s(),
            "batches": self._batches,
        }
