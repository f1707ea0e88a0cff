"""What the app knows about one run, rebuilt from its events: no Textual, no store.

The tail worker reads events from the run store; the screen feeds them to a
:class:`RunView` on the UI thread; panes draw from it. Everything here is plain
Python so it is unit-tested without a screen, and it holds bounded memory however
long the run: logs go through a capped deque, the throughput history is a short window.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rich.cells import cell_len

from kiln_lab.core.events import (
    ArtifactWritten,
    BenchmarkCellMeasured,
    Event,
    LogLine,
    MetricSampled,
    ProgressAdvanced,
    RunFinished,
    RunStarted,
    StageFailed,
    StageFinished,
    StageSkipped,
    StageStarted,
)
from kiln_lab.core.result import BenchmarkCell, RunResult
from kiln_lab.core.runconfig import AUTO
from kiln_lab.core.stages import STAGES

LOG_CAP = 5_000
"""Log lines kept in memory per run (the store keeps them all)."""
HISTORY_CAP = 240
"""Throughput points kept for the sparkline."""
REFRESH_INTERVAL_S = 0.2
"""Panes repaint at most this often, however fast events arrive (bounded for SSH links)."""

TERMINAL = frozenset({"succeeded", "failed", "cancelled", "interrupted"})
LEVELS = ("debug", "info", "warning", "error")
"""Log levels from least to most severe; the log filter shows a level and above."""


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One display line of the run log (a multi-line message becomes several)."""

    seq: int
    ts: float
    stage: str | None
    level: str
    text: str
    severity: int = 1
    """The level as a rank (0 debug .. 3 error), computed once."""
    width: int = 0
    """The text's width in terminal cells, computed once."""


def level_rank(level: str) -> int:
    level = level.lower()
    if level in ("critical", "fatal"):
        return 3
    try:
        return LEVELS.index(level)
    except ValueError:
        return 1


@dataclass
class StageState:
    """A stage on the timeline: waiting, running, done, skipped, failed or cancelled."""

    name: str
    status: str = "waiting"
    started: float | None = None
    duration_s: float | None = None
    description: str = ""
    reason: str = ""
    error: dict[str, Any] | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    done: int | None = None
    total: int | None = None

    def elapsed(self, now: float) -> float | None:
        if self.duration_s is not None:
            return self.duration_s
        if self.started is not None:
            return max(0.0, now - self.started)
        return None


class RunView:
    """The state of one run as its events describe it; ``apply`` is the only writer."""

    def __init__(self, run_id: str, *, log_cap: int = LOG_CAP) -> None:
        self.run_id = run_id
        self.status = "starting"
        self.config: dict[str, Any] = {}
        self.environment: dict[str, Any] = {}
        self.started: float | None = None
        self.finished: float | None = None
        self.stages: dict[str, StageState] = {name: StageState(name) for name in STAGES}
        self.current: str | None = None
        self.accuracy: dict[str, Any] | None = None
        self.throughput: dict[str, Any] | None = None
        self.resources: dict[str, Any] | None = None
        self.history: deque[float] = deque(maxlen=HISTORY_CAP)
        self.benchmark: dict[tuple[int, int], BenchmarkCell] = {}
        """Benchmark cells so far, by (batch size, sequence length)."""
        self.result: RunResult | None = None
        self.error: dict[str, Any] | None = None
        self.artifacts: list[tuple[str, str]] = []
        self.new_log: deque[LogEntry] = deque(maxlen=log_cap)
        """Lines not yet handed to the log widget (drained every repaint)."""
        self.log_total = 0
        self.warnings = 0
        self.errors = 0
        self.last_seq = 0
        self.dirty = True

    # -- reading ------------------------------------------------------------------------
    @property
    def is_finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def model(self) -> str:
        return str(self.config.get("model", ""))

    @property
    def build(self) -> tuple[str, str, bool]:
        """``(profile, precision, chosen)``: what runs. An auto run names ``auto`` until
        its resolve stage has chosen, then the choice (``chosen`` True)."""
        profile, precision = (
            str(self.config.get("profile", "")),
            str(self.config.get("precision", "")),
        )
        if AUTO not in (profile, precision):
            return profile, precision, False
        decided = self.stages["resolve"].summary.get("auto") or {}
        if self.result is not None and self.result.profile:
            decided = {"profile": self.result.profile, "precision": self.result.precision}
        if decided.get("profile") and decided.get("precision"):
            return str(decided["profile"]), str(decided["precision"]), True
        return profile, precision, False

    @property
    def perf_only(self) -> bool:
        if self.result is not None and self.result.perf_only is not None:
            return bool(self.result.perf_only)
        load = self.stages["load"].summary
        if "perf_only" in load:
            return bool(load["perf_only"])
        return bool(self.config.get("perf_only"))

    @property
    def batch_size(self) -> int | None:
        if self.result is not None and self.result.batch_size:
            return int(self.result.batch_size)
        for source in (self.stages["resolve"].summary, self.config):
            if source.get("batch_size"):
                return int(source["batch_size"])
        return None

    @property
    def examples(self) -> int | None:
        if self.result is not None and self.result.examples is not None:
            return int(self.result.examples)
        if self.stages["load"].summary.get("examples") is not None:
            return int(self.stages["load"].summary["examples"])
        return None

    def dataset_key(self) -> tuple[str, str] | None:
        """(dataset, split) once resolve named them, else what the config asked for."""
        summary = self.stages["resolve"].summary
        if summary.get("dataset"):
            return str(summary["dataset"]), str(summary.get("split", ""))
        if self.result is not None and self.result.data_key is not None:
            return self.result.data_key
        if self.config.get("dataset"):
            return str(self.config["dataset"]), str(self.config.get("split", "test"))
        return None

    def elapsed(self, now: float) -> float | None:
        if self.started is None:
            return None
        end = self.finished if self.finished is not None else now
        return max(0.0, end - self.started)

    def drain_log(self) -> list[LogEntry]:
        lines = list(self.new_log)
        self.new_log.clear()
        return lines

    # -- writing ------------------------------------------------------------------------
    def apply_all(self, events: Iterable[Event]) -> None:
        for event in events:
            self.apply(event)

    def apply(self, event: Event) -> None:
        self.dirty = True
        if isinstance(event, LogLine):
            self._log(event)
        elif isinstance(event, MetricSampled):
            self.apply_metric(event.group, event.values, event.ts)
        elif isinstance(event, BenchmarkCellMeasured):
            # A measured cell is also the run's latest throughput figure.
            figures = {"batch_size": event.batch_size, "seq_len": event.seq_len}
            figures |= {"samples_per_s": event.samples_per_s, "spread_pct": event.spread_pct}
            self.apply_metric("throughput", figures | event.latency, event.ts)
            self.add_benchmark_cell(event)
        elif isinstance(event, ProgressAdvanced):
            stage = self.stages.get(event.stage_name)
            if stage is not None:
                stage.done, stage.total = event.done, event.total
        elif isinstance(event, StageStarted):
            stage = self._stage(event.stage_name)
            stage.status, stage.started, stage.duration_s = "running", event.ts, None
            stage.description = event.description
            self.current = event.stage_name
            if self.status in ("starting", "queued"):
                self.status = "running"
        elif isinstance(event, StageFinished):
            stage = self._stage(event.stage_name)
            stage.status, stage.duration_s, stage.summary = "done", event.duration_s, event.summary
        elif isinstance(event, StageSkipped):
            stage = self._stage(event.stage_name)
            stage.status, stage.reason = "skipped", event.reason
        elif isinstance(event, StageFailed):
            stage = self._stage(event.stage_name)
            kind = str(event.error.get("kind", ""))
            stage.status = "cancelled" if kind == "Cancelled" else "failed"
            stage.duration_s, stage.error = event.duration_s, event.error
        elif isinstance(event, RunStarted):
            self.config = dict(event.config)
            self.environment = dict(event.environment)
            self.started = event.ts
            self.status = "running"
        elif isinstance(event, RunFinished):
            self._finish(event)
        elif (
            isinstance(event, ArtifactWritten)
            # A resumed run writes its rebuilt artifacts again: list each one once.
            and (event.artifact, event.path) not in self.artifacts
        ):
            self.artifacts.append((event.artifact, event.path))

    def apply_metric(self, group: str, values: dict[str, Any], ts: float | None = None) -> None:
        self.dirty = True
        if group == "accuracy":
            self.accuracy = dict(values)
        elif group == "throughput":
            self.throughput = dict(values)
            point = values.get("window_samples_per_s", values.get("samples_per_s"))
            if isinstance(point, int | float):
                self.history.append(float(point))
        elif group == "resources":
            self.resources = dict(values)

    def add_benchmark_cell(self, event: BenchmarkCellMeasured) -> None:
        self.dirty = True
        self.benchmark[(event.batch_size, event.seq_len)] = BenchmarkCell.from_event(event)

    def benchmark_grid(self) -> dict[tuple[int, int], BenchmarkCell]:
        """Every cell: the live ones, and the finished run's (a poll may have merged some)."""
        cells = dict(self.benchmark)
        for cell in self.result.benchmark_cells if self.result is not None else ():
            if cell.shape is not None:
                cells.setdefault(cell.shape, cell)
        return cells

    def apply_record(self, status: str, config: dict[str, Any], created: float | None) -> None:
        """What the store's run row says, for a run whose events have not arrived yet."""
        self.dirty = True
        if not self.config:
            self.config = dict(config)
        if self.started is None and created is not None and status not in ("queued",):
            self.started = created
        if status in TERMINAL or self.status in ("starting", "queued"):
            self.status = status

    def _stage(self, name: str) -> StageState:
        if name not in self.stages:
            self.stages[name] = StageState(name)
        return self.stages[name]

    def _log(self, event: LogLine) -> None:
        rank = level_rank(event.level)
        if rank == 2:
            self.warnings += 1
        elif rank >= 3:
            self.errors += 1
        level = LEVELS[min(rank, 3)]
        for text in str(event.message).replace("\t", "    ").splitlines() or [""]:
            self.log_total += 1
            self.new_log.append(
                LogEntry(
                    self.log_total, event.ts, event.stage_name, level, text, rank, cell_len(text)
                )
            )

    def _finish(self, event: RunFinished) -> None:
        self.status = event.status
        self.finished = event.ts
        self.error = event.error
        if event.result:
            self.result = RunResult.from_dict(event.result)
            if self.result.metrics is not None and self.accuracy is None:
                self.accuracy = self.result.metrics.to_dict() or None
        for stage in self.stages.values():
            if stage.status == "running":
                stage.status = "cancelled" if event.status == "cancelled" else "failed"
                if stage.started is not None:
                    stage.duration_s = max(0.0, event.ts - stage.started)
        self.current = None
