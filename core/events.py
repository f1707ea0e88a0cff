"""The one contract between the pipeline and every viewer (CLI, app, tests).

Events are frozen facts named in the past tense. The worker appends each one to the
run store as it happens; viewers read them back with :func:`from_record`. Payloads
are plain JSON-able values so the store stays readable by any tool.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar


def _now() -> float:
    return time.time()


@dataclass(frozen=True)
class Event:
    """Base class: every event knows its wall-clock time."""

    kind: ClassVar[str] = "event"
    ts: float = field(default_factory=_now, kw_only=True)

    @property
    def stage(self) -> str | None:
        return getattr(self, "stage_name", None)


@dataclass(frozen=True)
class RunStarted(Event):
    kind: ClassVar[str] = "run_started"
    config: dict[str, Any]
    environment: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageStarted(Event):
    kind: ClassVar[str] = "stage_started"
    stage_name: str
    description: str = ""


@dataclass(frozen=True)
class StageSkipped(Event):
    kind: ClassVar[str] = "stage_skipped"
    stage_name: str
    reason: str


@dataclass(frozen=True)
class StageFinished(Event):
    kind: ClassVar[str] = "stage_finished"
    stage_name: str
    duration_s: float
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageFailed(Event):
    kind: ClassVar[str] = "stage_failed"
    stage_name: str
    duration_s: float
    error: dict[str, Any]


@dataclass(frozen=True)
class LogLine(Event):
    kind: ClassVar[str] = "log_line"
    stage_name: str | None
    level: str
    message: str
    source: str = ""


@dataclass(frozen=True)
class ProgressAdvanced(Event):
    kind: ClassVar[str] = "progress_advanced"
    stage_name: str
    done: int
    total: int | None
    unit: str = "samples"


@dataclass(frozen=True)
class MetricSampled(Event):
    """A snapshot of live figures: ``group`` is ``accuracy``, ``throughput`` or ``resources``."""

    kind: ClassVar[str] = "metric_sampled"
    stage_name: str
    group: str
    values: dict[str, Any]


@dataclass(frozen=True)
class BenchmarkCellMeasured(Event):
    """One cell of the benchmark grid (batch size x sequence length), measured.

    Its own event, not a ``MetricSampled`` group, so viewers recognise a cell by its
    type instead of by which keys a values dict happens to carry. ``source`` says who
    measured it: ``kiln`` (Kiln's own timed loop) or ``tool`` (a vendor tool's figures).
    """

    kind: ClassVar[str] = "benchmark_cell_measured"
    stage_name: str
    batch_size: int
    seq_len: int
    samples_per_s: float
    latency: dict[str, float] = field(default_factory=dict)
    spread_pct: float = 0.0
    source: str = "kiln"


@dataclass(frozen=True)
class ArtifactWritten(Event):
    kind: ClassVar[str] = "artifact_written"
    stage_name: str
    artifact: str
    path: str
    sha256: str = ""
    size: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunFinished(Event):
    """The last event of a run: ``status`` is succeeded, failed, cancelled or interrupted."""

    kind: ClassVar[str] = "run_finished"
    status: str
    result: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        RunStarted,
        StageStarted,
        StageSkipped,
        StageFinished,
        StageFailed,
        LogLine,
        BenchmarkCellMeasured,
        ProgressAdvanced,
        MetricSampled,
        ArtifactWritten,
        RunFinished,
    )
}


def _jsonable(value: Any) -> Any:
    """JSON for what ``json`` cannot write itself: a dataclass as its fields, else text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def to_record(event: Event) -> tuple[str, str]:
    """Serialise an event as ``(kind, json payload)`` for the run store.

    The fields are read shallowly and ``json`` walks the values itself:
    ``dataclasses.asdict`` deep-copies every nested dict first, which made it most of
    the cost of storing a live snapshot.
    """
    fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    return event.kind, json.dumps(fields, ensure_ascii=False, default=_jsonable)


def from_record(kind: str, payload: str) -> Event:
    """Rebuild an event from the run store; unknown kinds are a store from a newer Kiln."""
    try:
        cls = EVENT_TYPES[kind]
    except KeyError:
        from kiln_lab.core.errors import StoreError

        raise StoreError(
            f"unknown event kind {kind!r} in the run store",
            hint="the store was written by a newer Kiln; upgrade Kiln to read it",
        ) from None
    return cls(**json.loads(payload))
