"""The run pipeline: resolve -> load -> export -> optimize -> quantize -> compile ->
verify -> evaluate -> benchmark -> report.

Stages are plain functions over a shared :class:`RunState`; they take the ``emit``
callable and a cancel check, never print, and log through ``logging``. A stage that
does not apply to a profile or precision is skipped with the reason.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiln_lab.core.errors import Cancelled, KilnError, LabelMismatch
from kiln_lab.core.events import (
    Event,
    RunStarted,
    StageFailed,
    StageFinished,
    StageSkipped,
    StageStarted,
)
from kiln_lab.core.runconfig import RunConfig
from kiln_lab.core.stages import DESCRIPTIONS

log = logging.getLogger(__name__)

Emit = Callable[[Event], None]
current_stage: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_stage", default=None
)


@dataclass
class RunState:
    """Everything stages hand to each other during one run."""

    config: RunConfig
    run_id: str
    card: Any = None
    profile: Any = None
    dataset: Any = None
    split: Any = None
    loaded: Any = None
    examples: tuple[Any, ...] = ()
    encoder: Any = None
    plan: list[list[int]] = field(default_factory=list)
    onnx_path: Path | None = None
    fused_path: Path | None = None
    torchscript_path: Path | None = None
    model_path: Path | None = None
    compiled: Any = None
    reference: Any = None
    batch_size: int = 32
    seq_len: int = 128
    stage_times: dict[str, float] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)


class Checkpoints:
    """Where a stage keeps progress that a resumed run picks up (in memory by default)."""

    def __init__(self) -> None:
        self.items: dict[str, Any] = {}

    def load(self, prefix: str) -> dict[str, Any]:
        return {k: v for k, v in self.items.items() if k.startswith(prefix)}

    def save(self, items: dict[str, Any]) -> None:
        self.items.update(items)


class StageRunner:
    """Wraps each stage in started / finished / failed events with its duration."""

    def __init__(
        self,
        state: RunState,
        emit: Emit,
        cancelled: Callable[[], bool],
        checkpoints: Checkpoints | None = None,
    ) -> None:
        self.state = state
        self.emit = emit
        self.cancelled = cancelled
        self.checkpoints = checkpoints or Checkpoints()

    def skip(self, name: str, reason: str) -> None:
        log.info("%s skipped: %s", name, reason)
        self.emit(StageSkipped(name, reason))

    @contextmanager
    def stage(self, name: str) -> Iterator[dict[str, Any]]:
        if self.cancelled():
            raise Cancelled(f"cancelled before {name}")
        token = current_stage.set(name)
        self.emit(StageStarted(name, DESCRIPTIONS.get(name, "")))
        start = time.perf_counter()
        summary: dict[str, Any] = {}
        try:
            yield summary
        except BaseException as exc:
            duration = time.perf_counter() - start
            error = (
                exc.to_dict()
                if isinstance(exc, KilnError)
                else {
                    "kind": type(exc).__name__,
                    "title": "Internal error",
                    "message": str(exc),
                    "hint": "this is a bug in Kiln; rerun with --debug and report it",
                }
            )
            self.emit(StageFailed(name, duration, error))
            raise
        finally:
            current_stage.reset(token)
        duration = time.perf_counter() - start
        self.state.stage_times[name] = round(duration, 4)
        self.emit(StageFinished(name, duration, summary))


def run_pipeline(
    config: RunConfig,
    run_id: str,
    emit: Emit,
    cancelled: Callable[[], bool] = lambda: False,
    checkpoints: Checkpoints | None = None,
) -> dict[str, Any]:
    """Run every stage of ``config``; returns the result that ``kiln show`` prints.

    With ``checkpoints`` from an interrupted run, evaluation continues where it stopped.
    """
    from kiln_lab.core.environment import environment
    from kiln_lab.core.stages import _legacy as stages

    state = RunState(config=config, run_id=run_id)
    runner = StageRunner(state, emit, cancelled, checkpoints)
    emit(RunStarted(config.to_dict(), environment()))
    for step in stages.PIPELINE:
        step(state, runner)
    return state.result


def check_dataset_labels(card: Any, dataset: Any) -> None:
    """The dataset's labels must be ones the model can predict."""
    found = set(dataset.labels)
    unknown = sorted(found - set(card.labels))
    if unknown:
        raise LabelMismatch(
            f"dataset labels {unknown} are not in model '{card.name}''s label set "
            f"{list(card.labels)}",
            path=dataset.source if Path(str(dataset.source)).exists() else card.card_path,
            hint="evaluate with a dataset of the model's task and labels, or use a model "
            "card whose labels match",
        )
