"""The run result, typed: what a finished run reports, read in one way everywhere.

The pipeline writes the result as a plain JSON dict (the run store's ``runs.result``
column, ``report.json``, ``kiln run --json``). Every viewer reads it through
:class:`RunResult` so each key is spelled once, here, instead of in ``.get()`` chains.

A result stored by any Kiln must still open: :meth:`RunResult.from_dict` reads a missing
key as ``None`` (the stage that writes it did not run) and keeps an unknown key in
``extra``. :meth:`RunResult.to_dict` gives back the dict the producers write, key for key
and in their order, so ``--json`` output and ``report.json`` read the same as before.

Longer than Kiln's usual module on purpose: it is the whole result schema, the one
place each key is spelled; split, a reader would hunt across files for a field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Self

from kiln_lab.core.events import BenchmarkCellMeasured

HEADLINE_METRICS = ("entity_f1", "accuracy")
"""The task metric a run is judged by, in preference order (NER, then classification)."""


def _out(value: Any) -> Any:
    """A field's value in its JSON shape: parts as dicts, tuples as lists."""
    if isinstance(value, _Part):
        return value.to_dict()
    if isinstance(value, list | tuple):
        return [_out(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _out(v) for k, v in value.items()}
    return value


def _same(value: Any) -> Any:
    return value


def _mapping(value: Any) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, Mapping) else None


def _sequence(value: Any) -> tuple[Any, ...] | None:
    return tuple(value) if isinstance(value, list | tuple) else None


def _many(part: type[_Part]) -> Callable[[Any], tuple[Any, ...] | None]:
    def parse(value: Any) -> tuple[Any, ...] | None:
        if not isinstance(value, list | tuple):
            return None
        return tuple(part.from_dict(v) for v in value if isinstance(v, Mapping))

    return parse


def _by_name(part: type[_Part]) -> Callable[[Any], dict[str, Any] | None]:
    def parse(value: Any) -> dict[str, Any] | None:
        if not isinstance(value, Mapping):
            return None
        return {k: part.from_dict(v) for k, v in value.items() if isinstance(v, Mapping)}

    return parse


@dataclass(frozen=True)
class _Part:
    """Shared reading and writing: known keys become fields, the rest stays in ``extra``.

    A part read by ``from_dict`` writes back the keys it was given, in their order. A
    part built in code writes its fields in declaration order (the producers' order),
    leaving out those that are ``None`` (their stage did not write them) except the
    names in ``_ALWAYS``, which the producers write even when empty.
    """

    _ALWAYS: ClassVar[frozenset[str]] = frozenset()
    _PARSE: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}

    extra: Mapping[str, Any] = field(default_factory=dict, kw_only=True)
    """Keys this Kiln does not know (from a newer or older one), and known keys whose
    value is not the shape it should be, kept as they were so a round trip loses nothing."""
    read_keys: tuple[str, ...] | None = field(default=None, kw_only=True, compare=False, repr=False)
    """The keys ``from_dict`` was given, in order; None for a part built in code."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        names = _field_names(cls)
        known: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            parsed = cls._PARSE.get(key, _same)(value) if key in names else None
            if parsed is None and value is not None:
                extra[key] = value  # unknown, or not the shape it should be: kept as is
            else:
                known[key] = parsed
        return cls(**known, extra=extra, read_keys=tuple(data))

    @classmethod
    def parse(cls, data: Any) -> Self | None:
        """``from_dict`` for a value read from a store: anything but a mapping is None."""
        return cls.from_dict(data) if isinstance(data, Mapping) else None

    def _keep(self, name: str) -> bool:
        return name in self._ALWAYS

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in self.read_keys or ():
            value = self.extra[key] if key in self.extra else getattr(self, key, None)
            out[key] = _out(value)
        built = self.read_keys is None
        for f in fields(self):
            if f.name in out or f.name in ("extra", "read_keys"):
                continue
            value = getattr(self, f.name)
            if built:
                wanted = value is not None or self._keep(f.name)
            else:  # a read part writes a field it was not given only if it was set since
                wanted = value is not None and value != f.default
            if wanted:
                out[f.name] = _out(value)
        out.update((key, _out(value)) for key, value in self.extra.items() if key not in out)
        return out


def _field_names(cls: type[_Part]) -> tuple[str, ...]:
    """A part's figures: its dataclass fields but the bookkeeping ones."""
    return tuple(f.name for f in fields(cls) if f.name not in ("extra", "read_keys"))


@dataclass(frozen=True)
class LabelScore(_Part):
    """Precision, recall, F1 and support of one entity type or class."""

    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    support: int | None = None


@dataclass(frozen=True)
class AccuracyMetrics(_Part):
    """The evaluation's scores: the NER fields or the classification ones, never both."""

    _PARSE = {"per_type": _by_name(LabelScore), "per_class": _by_name(LabelScore)}

    entity_f1: float | None = None
    entity_precision: float | None = None
    entity_recall: float | None = None
    entity_support: int | None = None
    token_accuracy: float | None = None
    """Over the tokens the model saw (truncated tokens left out)."""
    per_type: Mapping[str, LabelScore] | None = None
    tokens: int | None = None
    truncated_tokens: int | None = None
    """Tokens past the sequence length, left out of token accuracy; entity scores count
    them as predicted O. None in runs stored before Kiln counted them separately."""
    sentences: int | None = None
    accuracy: float | None = None
    macro_f1: float | None = None
    count: int | None = None
    per_class: Mapping[str, LabelScore] | None = None
    confidence: float | None = None
    """The level of every interval below (0.95 unless ``--confidence`` said otherwise)."""
    sequence: Mapping[str, Any] | None = None
    """Anytime-valid interval of each headline figure at the examples seen (live view)."""
    intervals: Mapping[str, Any] | None = None
    """Fixed-sample intervals: ``{figure: {low, high, confidence, method}}``, and
    ``per_type`` ``{type: {precision|recall|f1: interval}}`` for NER."""
    per_language: Mapping[str, Any] | None = None
    """Data with a language column: ``{language: {accuracy, count, interval}}``."""
    final: bool | None = None
    """The evaluation's last snapshot (also a cancelled or stopped one's): see ``complete``."""
    complete: bool | None = None
    """Every planned example was scored (not cancelled, not stopped early)."""
    early_stop: Mapping[str, Any] | None = None
    """``--until``: stopped ``after`` of ``of`` examples, with the ``interval`` that was
    narrower than ``width`` (an interval for the whole split's figure)."""
    paired: Mapping[str, Any] | None = None
    """A non-fp32 run against the fp32 graph on the same examples: the difference, its
    paired interval, and the budget verdict."""

    def interval(self, name: str) -> Mapping[str, Any] | None:
        """The interval to show beside figure ``name``: the early stop's for a stopped
        run's headline figure, else the fixed-sample one, else the live sequence."""
        stop = self.early_stop or {}
        if stop.get("metric") == name and isinstance(stop.get("interval"), Mapping):
            return stop["interval"]
        for source in (self.intervals, self.sequence):
            if isinstance(source, Mapping) and isinstance(source.get(name), Mapping):
                return source[name]
        return None

    def value(self, name: str) -> float | None:
        """A figure by the name model cards use (``entity_f1``, ``macro_f1``, ...)."""
        value = getattr(self, name) if name in _field_names(type(self)) else self.extra.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return value

    def headline(self) -> tuple[str, float] | None:
        """The task metric a run is judged by, as ``(name, value)``."""
        for name in HEADLINE_METRICS:
            value = self.value(name)
            if value is not None:
                return name, value
        return None


@dataclass(frozen=True)
class Throughput(_Part):
    """The evaluation pass's speed, and (once the report stage ran) its roofline share."""

    samples: int | None = None
    samples_per_s: float | None = None
    tokens_per_s: float | None = None
    padding_waste: float | None = None
    elapsed_s: float | None = None
    window_samples_per_s: float | None = None
    batches: int | None = None
    covers: str | None = None
    """Set on a resumed run: ``whole evaluation`` (earlier attempts' checkpointed batches
    included, as an uninterrupted run's figures would be) or ``re-evaluated batches only``
    (checkpoints from a Kiln that stored no timing)."""
    resumed_batches: int | None = None
    """Batches a resumed run took from an earlier attempt's checkpoints."""
    achieved_gflops: float | None = None
    peak_gflops: float | None = None
    percent_of_peak: float | None = None
    """Of the peak of the build's own runtime and precision (``peak_kernel``)."""
    peak_kernel: str | None = None
    peak_suspect: str | None = None
    """Why the peak (so the percentage) may be wrong: taken under load, or exceeded."""
    load: Mapping[str, Any] | None = None
    """The machine's load while this was timed (machine_load.Load): a busy figure says so."""


@dataclass(frozen=True)
class Latency(_Part):
    """Batch latency quantiles in milliseconds (nan where nothing was timed)."""

    count: int | None = None
    mean_ms: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None


@dataclass(frozen=True)
class Parity(_Part):
    """How closely the built model's logits follow the PyTorch fp32 reference."""

    samples: int | None = None
    positions: int | None = None
    max_abs_diff: float | None = None
    mean_abs_diff: float | None = None
    cosine: float | None = None
    agreement: float | None = None
    tolerance: float | None = None
    status: str | None = None
    """``pass``, ``warn`` or ``fail``."""
    disagreeing: tuple[int, ...] | None = None
    """The first examples (indices in the split) whose prediction differs."""

    _PARSE = {"disagreeing": _sequence}


@dataclass(frozen=True)
class PublishedFigure(_Part):
    """A figure from the model card beside what this run measured of the same metric."""

    _ALWAYS = frozenset({"measured", "delta"})

    metric: str | None = None
    value: float | None = None
    precision: str | None = None
    runtime: str | None = None
    source: str | None = None
    note: str | None = None
    measured: float | None = None
    """``None`` when the run scored nothing (a performance-only run)."""
    delta: float | None = None
    dataset: str | None = None
    """``dataset:split`` the figure was measured on, where it is Kiln's own data; None: a
    vendor's or a paper's own split, which no Kiln run evaluates (so no delta)."""
    per_language: Mapping[str, float] | None = None

    def applies_to(self, dataset: str | None, split: str | None) -> bool:
        """Whether a run on ``dataset``/``split`` measured the same thing as this figure,
        so a delta between them means something."""
        return bool(self.dataset) and self.dataset == f"{dataset}:{split}"


@dataclass(frozen=True)
class Calibration(_Part):
    """The calibration set an int8 build was calibrated on, by content hash."""

    samples: int | None = None
    sha256: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class Quantization(_Part):
    """How the quantize stage built the graph: int8 (with calibration) or fp16."""

    _PARSE = {"calibration": Calibration.parse, "kept_fp32": _sequence}

    recipe: str | None = None
    source: str | None = None
    calibration: Calibration | None = None
    kept_fp32: tuple[str, ...] | None = None
    """fp16 only: operator types left in fp32."""
    path: str | None = None
    cached: bool | None = None
    quantized_nodes: int | None = None


@dataclass(frozen=True)
class GuardStep(_Part):
    """One try of the accuracy guard: which nodes stayed in float, and what it scored."""

    _PARSE = {"kept_in_float": _sequence}

    kept_in_float: tuple[str, ...] | None = None
    metric: float | None = None
    drop_points: float | None = None
    samples_per_s: float | None = None
    within_budget: bool | None = None
    verdict: Mapping[str, Any] | None = None
    """The paired verdict against the float graph on the guard set."""


@dataclass(frozen=True)
class SensitiveNode(_Part):
    node: str | None = None
    noise_ratio: float | None = None


@dataclass(frozen=True)
class Guard(_Part):
    """The int8 accuracy guard's verdict against the float graph."""

    _PARSE = {
        "kept_in_float": _sequence,
        "steps": _many(GuardStep),
        "sensitivity": _many(SensitiveNode),
    }

    metric: str | None = None
    budget_points: float | None = None
    float_metric: float | None = None
    float_samples_per_s: float | None = None
    within_budget: bool | None = None
    repaired: bool | None = None
    kept_in_float: tuple[str, ...] | None = None
    steps: tuple[GuardStep, ...] | None = None
    sensitivity: tuple[SensitiveNode, ...] | None = None

    @property
    def last_step(self) -> GuardStep | None:
        return self.steps[-1] if self.steps else None


@dataclass(frozen=True)
class ToolCompile(_Part):
    """A vendor tool's compile call: the command line, and whether it was cached."""

    _PARSE = {"command": _sequence}

    command: tuple[str, ...] | None = None
    cached: bool | None = None
    duration_s: float | None = None
    artifact: str | None = None


@dataclass(frozen=True)
class Toolchain(_Part):
    _PARSE = {"compile": ToolCompile.parse}

    compile: ToolCompile | None = None


@dataclass(frozen=True)
class BenchmarkCell(_Part):
    """One batch size x sequence length cell of the benchmark grid."""

    _PARSE = {
        "samples_per_s_trials": _sequence,
        "latency": Latency.parse,
        "resources": _mapping,
        "command": _sequence,
    }

    batch_size: int | None = None
    seq_len: int | None = None
    samples_per_s: float | None = None
    samples_per_s_trials: tuple[float, ...] | None = None
    spread_pct: float | None = None
    latency: Latency | None = None
    resources: Mapping[str, float] | None = None
    source: str | None = None
    """``tool`` when a vendor tool measured it; absent for Kiln's own timed loop."""
    command: tuple[str, ...] | None = None
    achieved_gflops: float | None = None
    peak_gflops: float | None = None
    percent_of_peak: float | None = None
    """Of the peak of the build's own runtime and precision (``peak_kernel``)."""
    peak_kernel: str | None = None
    peak_suspect: str | None = None
    """Why the peak (so the percentage) may be wrong: taken under load, or exceeded."""
    load: Mapping[str, Any] | None = None
    """The machine's load while this was timed (machine_load.Load): a busy figure says so."""

    @property
    def shape(self) -> tuple[int, int] | None:
        """``(batch size, sequence length)``, or None for a cell that does not say."""
        if isinstance(self.batch_size, int) and isinstance(self.seq_len, int):
            return self.batch_size, self.seq_len
        return None

    @classmethod
    def from_event(cls, event: BenchmarkCellMeasured) -> BenchmarkCell:
        """The cell as a live viewer has it, before the run's result is written."""
        return cls(
            batch_size=event.batch_size,
            seq_len=event.seq_len,
            samples_per_s=event.samples_per_s,
            spread_pct=event.spread_pct,
            latency=Latency.from_dict(event.latency),
            source=event.source,
        )


@dataclass(frozen=True)
class BenchmarkGrid(_Part):
    """The benchmark stage's grid: its plan, every cell, and the machine's peaks."""

    _ALWAYS = frozenset({"cells"})
    _PARSE = {
        "plan": _mapping,
        "cells": _many(BenchmarkCell),
        "peaks": _mapping,
        "peak": _mapping,
        "operators": _mapping,
    }

    plan: Mapping[str, Any] | None = None
    cells: tuple[BenchmarkCell, ...] = ()
    peaks: Mapping[str, float] | None = None
    """Kiln before the per-runtime roofline: fp32 and int8 ONNX Runtime peaks."""
    peak: Mapping[str, Any] | None = None
    """The kernel peak of the build's own runtime and precision (roofline.Peak)."""
    operators: Mapping[str, Any] | None = None
    """Time per operator type at the largest cell, from the runtime's own profiler."""
    tool: bool | None = None
    """True when a vendor tool measured the cells."""


@dataclass(frozen=True)
class RunResult(_Part):
    """Everything a finished run reports; a field is None where its stage did not run.

    Fields are in the order the stages write them: quantize, compile, verify, evaluate,
    benchmark, then report (which names the run and its inputs).
    """

    _PARSE = {
        "guard": Guard.parse,
        "quantization": Quantization.parse,
        "toolchain": Toolchain.parse,
        "runtime_settings": _mapping,
        "parity": Parity.parse,
        "metrics": AccuracyMetrics.parse,
        "throughput": Throughput.parse,
        "latency": Latency.parse,
        "resources": _mapping,
        "benchmark": BenchmarkGrid.parse,
        "reference": _many(PublishedFigure),
        "stages": _mapping,
        "environment": _mapping,
    }

    guard: Guard | None = None
    quantization: Quantization | None = None
    toolchain: Toolchain | None = None
    runtime_settings: Mapping[str, Any] | None = None
    parity: Parity | None = None
    metrics: AccuracyMetrics | None = None
    """None for a performance-only run (random weights: nothing to score)."""
    throughput: Throughput | None = None
    latency: Latency | None = None
    resources: Mapping[str, float] | None = None
    truncated: int | None = None
    """Examples longer than the sequence length, cut to fit."""
    benchmark: BenchmarkGrid | None = None
    run_id: str | None = None
    model: str | None = None
    family: str | None = None
    task: str | None = None
    dataset: str | None = None
    split: str | None = None
    data_hash: str | None = None
    profile: str | None = None
    runtime: str | None = None
    precision: str | None = None
    perf_only: bool | None = None
    batch_size: int | None = None
    seq_len: int | None = None
    padding: str | None = None
    examples: int | None = None
    worker: Mapping[str, Any] | None = None
    """The process that ran the pipeline: its pid and peak resident memory (MB)."""
    auto: Mapping[str, Any] | None = None
    """``--profile/--precision auto``: every build tried, its figures, and why one won."""
    held_apart: Mapping[str, Any] | None = None
    """A user's file with no train/dev split: the part held apart for calibration and the
    int8 guard (never reported on), and why."""
    reference: tuple[PublishedFigure, ...] | None = None
    stages: Mapping[str, float] | None = None
    """Seconds per stage that ran."""
    environment: Mapping[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Self:
        """Read a stored result; ``None`` (a run that never finished) is an empty one."""
        return super().from_dict(data) if isinstance(data, Mapping) else cls()

    def _keep(self, name: str) -> bool:
        # The evaluate stage writes "metrics" beside its speed figures even when it
        # scored nothing (a performance-only run), so a round trip keeps it as null.
        return name == "metrics" and self.throughput is not None

    @property
    def data_key(self) -> tuple[str, str] | None:
        """``(dataset, split)`` the run evaluated, once its report stage named them."""
        if not self.dataset:
            return None
        return str(self.dataset), str(self.split or "")

    @property
    def benchmark_cells(self) -> tuple[BenchmarkCell, ...]:
        return self.benchmark.cells if self.benchmark is not None else ()

    @property
    def references(self) -> tuple[PublishedFigure, ...]:
        return self.reference or ()

    @property
    def scored(self) -> bool:
        """Whether the run has accuracy figures (it evaluated with trained weights)."""
        return self.metrics is not None and self.metrics != AccuracyMetrics() and not self.perf_only

    def published(self, metric: str | None, precision: str = "fp32") -> PublishedFigure | None:
        """The card's figure for ``metric`` at ``precision``, as this run recorded it."""
        return next(
            (r for r in self.references if r.metric == metric and r.precision == precision),
            None,
        )
