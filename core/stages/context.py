"""What every stage is handed besides its inputs: the run's config, ``emit``, the
cancel check, checkpoints, and the wrapper that turns a stage into events.

Stages never print and never reach for global state; a test builds a
:class:`StageContext` with a list's ``append`` as ``emit`` and calls one stage on
hand-made inputs.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kiln_lab.core.errors import Cancelled, KilnError, internal_error
from kiln_lab.core.events import Event, StageFailed, StageFinished, StageSkipped, StageStarted
from kiln_lab.core.machine_load import LoadMeter
from kiln_lab.core.runconfig import RunConfig
from kiln_lab.core.stages import DESCRIPTIONS

log = logging.getLogger(__name__)

Emit = Callable[[Event], None]

current_stage: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_stage", default=None
)
"""The stage running now: the worker tags log lines with it."""


class Checkpoints:
    """Where a stage keeps progress that a resumed run picks up (in memory by default;
    the worker keeps them in the run store)."""

    def __init__(self) -> None:
        self.items: dict[str, Any] = {}

    def load(self, prefix: str) -> dict[str, Any]:
        return {k: v for k, v in self.items.items() if k.startswith(prefix)}

    def save(self, items: dict[str, Any]) -> None:
        self.items.update(items)


@dataclass
class StageContext:
    """One run's context for its stages: wraps each stage in started / finished /
    failed events and records how long it took."""

    config: RunConfig
    run_id: str
    emit: Emit
    cancelled: Callable[[], bool] = lambda: False
    checkpoints: Checkpoints = field(default_factory=Checkpoints)
    stage_times: dict[str, float] = field(default_factory=dict)
    stage_load: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The machine's load while each stage ran (machine_load.Load), for its speed figures."""
    nested: bool = False
    """A build made inside another stage (``--precision auto``'s probes): its stages keep
    the outer stage's name on their log lines."""
    auto: dict[str, Any] | None = None
    """``--profile/--precision auto``: what was tried and why the build was chosen."""

    def skip(self, name: str, reason: str) -> None:
        log.info("%s skipped: %s", name, reason)
        self.emit(StageSkipped(name, reason))

    @contextmanager
    def stage(self, name: str) -> Iterator[dict[str, Any]]:
        """Runs the body as stage ``name``; the yielded dict is its finished summary."""
        if self.cancelled():
            raise Cancelled(f"cancelled before {name}")
        token = current_stage.set(current_stage.get() if self.nested else name)
        self.emit(StageStarted(name, DESCRIPTIONS.get(name, "")))
        start = time.perf_counter()
        meter = LoadMeter()
        summary: dict[str, Any] = {}
        try:
            yield summary
        except BaseException as exc:
            duration = time.perf_counter() - start
            error = exc.to_dict() if isinstance(exc, KilnError) else internal_error(exc)
            self.emit(StageFailed(name, duration, error))
            raise
        finally:
            current_stage.reset(token)
        duration = time.perf_counter() - start
        self.stage_times[name] = round(duration, 4)
        self.stage_load[name] = meter.read().to_dict()
        self.emit(StageFinished(name, duration, summary))
