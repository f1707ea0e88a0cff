"""The benchmark stage's engine: fixed shapes, warm-up excluded, repeated trials.

Each grid cell (batch size x sequence length) runs ``trials`` times after a warm-up,
each trial a fixed number of iterations or a fixed duration, so a reader can tell
noise (the spread across trials) from a difference. Concurrency comes as instances
(sessions on threads in one process) and processes (each with its own session).
Latency quantiles use a bounded reservoir; CPU %, RSS and, when NVML finds a GPU,
its utilisation and memory are sampled alongside.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import psutil

from kiln_lab.core.errors import Cancelled, ConfigError
from kiln_lab.core.metrics import LatencyRecorder

ModelFactory = Callable[[], Any]


@dataclass(frozen=True)
class BenchmarkPlan:
    batch_sizes: tuple[int, ...]
    seq_lens: tuple[int, ...]
    warmup: int = 3
    iterations: int | None = 20
    duration_s: float | None = None
    trials: int = 3
    instances: int = 1
    processes: int = 1

    def __post_init__(self) -> None:
        if not self.batch_sizes or not self.seq_lens:
            raise ConfigError("a benchmark needs at least one batch size and one sequence length")
        if min(self.batch_sizes) < 1 or min(self.seq_lens) < 2:
            raise ConfigError("batch sizes must be >= 1 and sequence lengths >= 2")
        if (self.iterations is None) == (self.duration_s is None):
            raise ConfigError("give a benchmark either iterations or a duration, not both")
        if self.trials < 1 or self.instances < 1 or self.processes < 1 or self.warmup < 0:
            raise ConfigError("trials, instances and processes must be >= 1; warm-up >= 0")


@dataclass
class CellResult:
    batch_size: int
    seq_len: int
    samples_per_s: float
    samples_per_s_trials: list[float]
    spread_pct: float
    latency: dict[str, float]
    resources: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def synthetic_batch(
    batch: int, seq_len: int, input_names: Sequence[str], vocab_size: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """Fixed-shape inputs: random token ids (no padding), as the vendor tools feed them."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, max(vocab_size, 6), size=(batch, seq_len), dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    if "token_type_ids" in input_names:
        feeds["token_type_ids"] = np.zeros_like(ids)
    return feeds


class ResourceMonitor:
    """Samples CPU %, RSS and (with NVML) GPU use on a thread while a cell runs."""

    def __init__(self, interval_s: float = 0.2) -> None:
        self.interval_s = interval_s
        self.process = psutil.Process()
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._nvml = nvml_device()

    def __enter__(self) -> ResourceMonitor:
        self.process.cpu_percent(None)
        self._thread = threading.Thread(target=self._run, daemon=True, name="kiln-resources")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        # CPU % covers the time since the last sample: this one closes the cell, and is
        # the only one for a cell shorter than the interval.
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self) -> None:
        sample = {
            "cpu_percent": self.process.cpu_percent(None),
            "rss_mb": self.process.memory_info().rss / 1e6,
        }
        self.samples.append(sample | gpu_sample(self._nvml))

    def summary(self) -> dict[str, float]:
        if not self.samples:
            return {}
        keys = self.samples[0].keys()
        out = {f"{k}_mean": statistics.fmean(s[k] for s in self.samples) for k in keys}
        out |= {f"{k}_max": max(s[k] for s in self.samples) for k in keys}
        return out


def nvml_device() -> Any:
    """The first GPU's NVML handle, or None (no NVML, no driver, no GPU)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml.nvmlDeviceGetHandleByIndex(0)
    except Exception:  # noqa: BLE001 - any failure means there is no GPU to sample
        return None


def gpu_sample(handle: Any) -> dict[str, float]:
    """GPU utilisation and memory, or ``gpu_count: 0`` when NVML found no GPU."""
    if handle is None:
        return {"gpu_count": 0}
    import pynvml

    util = pynvml.nvmlDeviceGetUtilizationRates(handle)
    mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
    return {
        "gpu_util_percent": float(util.gpu),
        "gpu_mem_mb": mem.used / 1e6,
        "gpu_mem_total_mb": mem.total / 1e6,
        "gpu_count": 1,
    }


def _trial(
    models: Sequence[Any],
    feeds: dict[str, np.ndarray],
    plan: BenchmarkPlan,
    latency: LatencyRecorder,
) -> tuple[int, float]:
    """One timed trial over every instance at once; returns (runs, wall seconds)."""
    counts = [0] * len(models)
    lock = threading.Lock()
    deadline = time.perf_counter() + plan.duration_s if plan.duration_s else None

    def loop(slot: int, model: Any) -> None:
        n = 0
        while (n < plan.iterations) if plan.iterations else (time.perf_counter() < deadline):
            start = time.perf_counter()
            model.run(feeds)
            elapsed = time.perf_counter() - start
            with lock:
                latency.add(elapsed)
            n += 1
        counts[slot] = n

    start = time.perf_counter()
    if len(models) == 1:
        loop(0, models[0])
    else:
        threads = [threading.Thread(target=loop, args=(i, m)) for i, m in enumerate(models)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return sum(counts), time.perf_counter() - start


def run_cell(
    models: Sequence[Any],
    batch: int,
    seq_len: int,
    plan: BenchmarkPlan,
    *,
    input_names: Sequence[str],
    vocab_size: int,
) -> CellResult:
    """Benchmark one shape in this process: warm-up, then ``plan.trials`` timed trials."""
    feeds = synthetic_batch(batch, seq_len, input_names, vocab_size)
    for model in models:
        for _ in range(plan.warmup):
            model.run(feeds)
    latency = LatencyRecorder()
    rates = []
    with ResourceMonitor() as monitor:
        for _ in range(plan.trials):
            runs, wall = _trial(models, feeds, plan, latency)
            rates.append(runs * batch / wall if wall > 0 else 0.0)
    mean = statistics.fmean(rates)
    spread = (max(rates) - min(rates)) / mean * 100 if mean else 0.0
    summary = latency.summary()
    return CellResult(
        batch,
        seq_len,
        mean,
        rates,
        spread,
        {k: v for k, v in summary.items() if k != "count"} | {"runs": summary["count"]},
        monitor.summary(),
    )


def run_grid(
    make_model: ModelFactory,
    plan: BenchmarkPlan,
    *,
    input_names: Sequence[str],
    vocab_size: int,
    max_seq_len: int,
    on_cell: Callable[[CellResult], None] = lambda cell: None,
    cancelled: Callable[[], bool] = lambda: False,
    process_factory: Callable[[int, int], CellResult] | None = None,
) -> list[CellResult]:
    """Every cell of the grid, in order; ``process_factory`` runs a cell across processes."""
    too_long = [s for s in plan.seq_lens if s > max_seq_len]
    if too_long:
        raise ConfigError(
            f"sequence length(s) {too_long} exceed the model's {max_seq_len}",
            hint=f"use --seq-lens up to {max_seq_len}",
        )
    models = [make_model() for _ in range(plan.instances)] if plan.processes == 1 else []
    results = []
    for batch in plan.batch_sizes:
        for seq_len in plan.seq_lens:
            if cancelled():
                raise Cancelled(f"benchmark cancelled after {len(results)} cell(s)")
            if plan.processes > 1:
                if process_factory is None:
                    raise ConfigError(
                        "this runtime cannot benchmark across processes",
                        hint="use --instances instead of --processes",
                    )
                cell = process_factory(batch, seq_len)
            else:
                cell = run_cell(
                    models, batch, seq_len, plan, input_names=input_names, vocab_size=vocab_size
                )
            results.append(cell)
            on_cell(cell)
    for model in models:
        model.close()
    return results
