"""bench/paired.py: a verdict only when the interval of the median ratio allows one."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "kiln_bench_paired", Path(__file__).parents[2] / "bench" / "paired.py"
)
assert _spec is not None and _spec.loader is not None
paired = importlib.util.module_from_spec(_spec)
sys.modules["kiln_bench_paired"] = paired  # dataclasses look their module up
_spec.loader.exec_module(paired)


def test_the_median_interval_is_the_sign_test_one() -> None:
    values = [float(v) for v in range(1, 21)]  # n = 20: x(6)..x(15) has 95.9% coverage
    assert paired.median_interval(values) == (6.0, 15.0)
    assert paired.median_interval([3.0, 1.0, 2.0, 5.0, 4.0, 7.0, 6.0]) == (1.0, 7.0)
    assert paired.median_interval([2.0, 1.0]) == (1.0, 2.0)  # too few: the whole range


def _made(ratios: list[float]) -> object:
    result = paired.Paired("kiln", "bare")
    result.rates_a = [100.0 * r for r in ratios]
    result.rates_b = [100.0] * len(ratios)
    return result


def test_met_missed_and_undecided() -> None:
    assert _made([0.97, 0.98, 0.96, 0.97, 0.99, 0.98, 0.97]).verdict(0.95) == "met"
    assert _made([0.90, 0.91, 0.92, 0.90, 0.93, 0.91, 0.92]).verdict(0.95) == "missed"
    noisy = _made([0.90, 1.02, 0.94, 0.99, 0.93, 1.01, 0.96])
    assert noisy.verdict(0.95) == "undecided" and "undecided" in noisy.line(0.95)
    assert paired.exit_code(["met", "undecided"]) == paired.EXIT_UNDECIDED
    assert paired.exit_code(["missed", "undecided"]) == paired.EXIT_MISSED
    assert paired.exit_code(["met", "met"]) == 0


def test_run_pairs_interleaves_and_times_each_trial_long_enough() -> None:
    order: list[str] = []

    def trial(name: str, units: float) -> object:
        def run() -> float:
            order.append(name)
            sum(range(20_000))
            return units

        return run

    result = paired.run_pairs(
        ("a", trial("a", 2.0)), ("b", trial("b", 1.0)), pairs=4, min_seconds=0.02
    )
    assert len(result.ratios) == 4 and result.median == pytest.approx(2.0, rel=0.5)
    # warm-up a b, then A B | B A | A B | B A: with repeated calls merged into runs,
    # a b a b a b a (B A after A B makes one run of b, then one of a).
    runs = [name for i, name in enumerate(order) if i == 0 or order[i - 1] != name]
    assert runs == ["a", "b", "a", "b", "a", "b", "a"]


def test_a_known_ratio_under_noise_is_decided_with_enough_pairs() -> None:
    rng = random.Random(0)
    ratios = [1.10 * rng.uniform(0.97, 1.03) for _ in range(25)]
    assert _made(ratios).verdict(1.0) == "met"
    assert _made(ratios).verdict(1.2) == "missed"
