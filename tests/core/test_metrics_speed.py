"""Latency quantiles and throughput, driven by a fake clock (no sleeping)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from kiln_lab.core.metrics import LatencyRecorder, ThroughputMeter


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- LatencyRecorder -------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 7, 100, 1000])
def test_latency_quantiles_are_exact_for_small_n(n: int) -> None:
    rng = random.Random(n)
    values = [rng.expovariate(50.0) for _ in range(n)]
    recorder = LatencyRecorder()
    for v in values:
        recorder.add(v)
    for q in (0.0, 0.1, 0.5, 0.9, 0.99, 1.0):
        assert recorder.quantile(q) == pytest.approx(
            float(np.percentile(values, q * 100, method="linear")), abs=1e-15
        )
    summary = recorder.summary()
    assert summary["count"] == n
    assert summary["mean_ms"] == pytest.approx(np.mean(values) * 1e3)
    assert summary["p90_ms"] == pytest.approx(np.percentile(values, 90) * 1e3)
    assert summary["max_ms"] == max(values) * 1e3
    assert recorder.exact


def test_latency_memory_is_bounded_and_estimates_stay_close() -> None:
    recorder = LatencyRecorder(capacity=1000, seed=1)
    values = np.random.default_rng(0).uniform(0.0, 1.0, 100_000)
    for v in values:
        recorder.add(v)
    assert recorder.count == 100_000
    assert not recorder.exact
    assert recorder._sample.size == 1000  # the reservoir never grows
    summary = recorder.summary()
    assert summary["max_ms"] == values.max() * 1e3  # max and mean stay exact
    assert summary["mean_ms"] == pytest.approx(values.mean() * 1e3)
    assert recorder.quantile(0.5) == pytest.approx(0.5, abs=0.06)
    assert recorder.quantile(0.9) == pytest.approx(0.9, abs=0.04)


def test_latency_reservoir_is_reproducible() -> None:
    a, b = LatencyRecorder(capacity=10, seed=3), LatencyRecorder(capacity=10, seed=3)
    for i in range(500):
        a.add(i / 1000)
        b.add(i / 1000)
    assert a.summary() == b.summary()


def test_latency_empty_and_invalid() -> None:
    recorder = LatencyRecorder()
    assert math.isnan(recorder.quantile(0.5))
    summary = recorder.summary()
    assert summary["count"] == 0
    assert all(math.isnan(v) for k, v in summary.items() if k != "count")
    for bad in (-0.1, math.nan, math.inf):
        with pytest.raises(ValueError):
            recorder.add(bad)
    with pytest.raises(ValueError):
        recorder.quantile(1.5)
    with pytest.raises(ValueError):
        LatencyRecorder(capacity=0)


# --- ThroughputMeter -------------------------------------------------------------------------


def test_throughput_overall_rates_with_a_fake_clock() -> None:
    clock = FakeClock()
    meter = ThroughputMeter(window_s=5.0, clock=clock)
    assert meter.summary()["samples_per_s"] == 0.0
    for _ in range(10):
        clock.advance(2.0)
        meter.add(32, tokens=600, padded_tokens=800)
    summary = meter.summary()
    assert summary["samples"] == 320
    assert summary["elapsed_s"] == pytest.approx(20.0)
    assert summary["samples_per_s"] == pytest.approx(16.0)
    assert summary["tokens_per_s"] == pytest.approx(300.0)
    assert summary["padding_waste"] == pytest.approx(0.25)
    assert summary["batches"] == 10
    # After the run the overall rate is frozen at the last batch; the window decays.
    clock.advance(100.0)
    assert meter.samples_per_s() == pytest.approx(16.0)
    assert meter.window_samples_per_s() == 0.0


def test_throughput_window_follows_the_recent_rate() -> None:
    clock = FakeClock()
    meter = ThroughputMeter(window_s=5.0, clock=clock)
    for _ in range(20):  # 10 samples/s for 20 s
        clock.advance(1.0)
        meter.add(10)
    assert meter.window_samples_per_s() == pytest.approx(10.0)
    for _ in range(10):  # then 40 samples/s
        clock.advance(0.5)
        meter.add(20)
    assert meter.window_samples_per_s() == pytest.approx(40.0)
    assert meter.samples_per_s() == pytest.approx(400 / 25)
    # A stall: half the window without a finished batch halves the window rate.
    clock.advance(2.5)
    assert meter.window_samples_per_s() == pytest.approx(20.0)
    assert len(meter._recent) <= 12  # only batches near the window are kept


def test_throughput_window_with_batches_longer_than_the_window() -> None:
    clock = FakeClock()
    meter = ThroughputMeter(window_s=5.0, clock=clock)
    for _ in range(3):  # 32 samples every 8 s = 4 samples/s
        clock.advance(8.0)
        meter.add(32)
    assert meter.window_samples_per_s() == pytest.approx(4.0)


def test_throughput_early_window_uses_time_since_start_and_start_resets() -> None:
    clock = FakeClock()
    meter = ThroughputMeter(window_s=5.0, clock=clock)
    clock.advance(1.0)
    meter.add(8)  # warm-up batch
    assert meter.window_samples_per_s() == pytest.approx(8.0)
    meter.start()  # exclude the warm-up
    assert meter.summary()["samples"] == 0
    assert meter.window_samples_per_s() == 0.0
    clock.advance(2.0)
    meter.add(10)
    meter.add(10)  # same clock reading: counted whole
    assert meter.samples_per_s() == pytest.approx(10.0)
    assert meter.window_samples_per_s() == pytest.approx(10.0)


def test_throughput_no_tokens_and_invalid() -> None:
    meter = ThroughputMeter(clock=FakeClock())
    assert meter.padding_waste() == 0.0
    with pytest.raises(ValueError):
        meter.add(-1)
    with pytest.raises(ValueError):
        ThroughputMeter(window_s=0)
