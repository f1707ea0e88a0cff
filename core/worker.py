"""The worker process: runs one pipeline and writes every event to the run store.

Runs never execute in the app or the CLI process, so a closed terminal or a dropped
SSH link does not stop them. Cancellation arrives as a flag in the store (or SIGTERM /
SIGINT) and is honoured between batches. ``python -m kiln_lab.core.worker RUN_ID --store PATH``.

The run's last word (``RunFinished``) and its final status, result and error are written
in one transaction (:meth:`RunStore.finish_run`): a follower that sees the event always
reads a finished record.

Test-only hook: with ``KILN_TEST_KILL_AT_STAGE=STAGE`` in its environment, the worker
process SIGKILLs its own process group right after it has stored STAGE's
``StageStarted`` (or ``StageSkipped``) event, so the resume tests can interrupt even a
stage that lasts milliseconds at a known point. Unset (always, outside tests) it does
nothing; :func:`execute_run` called in-process never reads it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kiln_lab.core.disk_reserve import run_with_reserve
from kiln_lab.core.errors import Cancelled, KilnError, internal_error
from kiln_lab.core.events import Event, LogLine, RunFinished, StageSkipped, StageStarted
from kiln_lab.core.pipeline import Checkpoints, current_stage, run_pipeline
from kiln_lab.core.runconfig import RunConfig
from kiln_lab.core.store import RunStore

LOGGERS = ("kiln_lab", "transformers", "onnxruntime", "torch.onnx")
KILL_AT_STAGE_VARIABLE = "KILN_TEST_KILL_AT_STAGE"
"""Test-only: see the module docstring."""


class StoreEmitter:
    """Thread-safe ``emit`` that appends to the store (libraries log from other threads)."""

    def __init__(self, store: RunStore, run_id: str, kill_at_stage: str | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.lock = threading.Lock()
        self.kill_at_stage = kill_at_stage
        """Test-only (``KILN_TEST_KILL_AT_STAGE``): die once this stage has started."""

    def __call__(self, event: Event) -> None:
        with self.lock:
            self.store.append(self.run_id, event)
            if (
                self.kill_at_stage
                and isinstance(event, StageStarted | StageSkipped)
                and event.stage_name == self.kill_at_stage
            ):
                os.killpg(os.getpgrp(), signal.SIGKILL)

    def finish(self, event: RunFinished) -> None:
        """The run's last event, written with its final status in one transaction."""
        with self.lock:
            self.store.finish_run(self.run_id, event)


class EventLogHandler(logging.Handler):
    """Turns log records into ``LogLine`` events tagged with the running stage."""

    def __init__(self, emit: Callable[[Event], None]) -> None:
        super().__init__(logging.INFO)
        self.emit_event = emit

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            self.emit_event(
                LogLine(current_stage.get(), record.levelname.lower(), message, record.name)
            )
        except Exception:  # noqa: BLE001 - logging must never take a run down
            self.handleError(record)


class CancelFlag:
    """Set by a signal or by the store's cancel request (polled at most twice a second)."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.event = threading.Event()
        self._checked = 0.0

    def __call__(self) -> bool:
        if self.event.is_set():
            return True
        now = time.monotonic()
        if now - self._checked > 0.5:
            self._checked = now
            if self.store.cancel_requested(self.run_id):
                self.event.set()
        return self.event.is_set()

    def stop_evaluation(self) -> bool:
        """Whether the app asked to stop evaluating early (read at shard boundaries)."""
        return self.store.stop_evaluation_requested(self.run_id)


class StoreCheckpoints(Checkpoints):
    """Checkpoints kept in the run store, so a killed worker loses nothing finished."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        super().__init__()
        self.store = store
        self.run_id = run_id

    def load(self, prefix: str) -> dict[str, Any]:
        return self.store.load_checkpoints(self.run_id, prefix)

    def save(self, items: dict[str, Any]) -> None:
        self.store.save_checkpoints(self.run_id, items)


def execute_run(store: RunStore, run_id: str, *, kill_at_stage: str | None = None) -> int:
    """Run ``run_id`` in this process; returns the exit code. Used by the worker and tests.

    A run that was interrupted before picks up its stored evaluation progress.
    ``kill_at_stage`` is the worker's test-only hook (see the module docstring).
    """
    record = store.run(run_id)
    config = RunConfig.from_dict(record.config)
    store.set_status(run_id, "running", pid=os.getpid())
    emit = StoreEmitter(store, run_id, kill_at_stage)
    cancelled = CancelFlag(store, run_id)
    handler = EventLogHandler(emit)
    loggers = [logging.getLogger(name) for name in LOGGERS]
    previous = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    try:
        result = run_pipeline(config, run_id, emit, cancelled, StoreCheckpoints(store, run_id))
    except Cancelled as exc:
        emit.finish(RunFinished("cancelled", error=exc.to_dict()))
        return exc.exit_code
    except KilnError as exc:
        emit.finish(RunFinished("failed", error=exc.to_dict()))
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - a bug: record it, never lose the run
        error = internal_error(exc, traceback_at="the run's log")
        emit(LogLine(current_stage.get(), "error", traceback.format_exc(), "kiln_lab.core.worker"))
        emit.finish(RunFinished("failed", error=error))
        return 2
    finally:
        for lg, level in previous:
            lg.removeHandler(handler)
            lg.setLevel(level)
    result["worker"] = {"pid": os.getpid(), "peak_rss_mb": _peak_rss_mb()}
    emit.finish(RunFinished("succeeded", result=result))
    return 0


def _peak_rss_mb() -> float | None:
    """The worker's own peak resident memory: the figure an operator sizes a host by
    (the client that launched it is a small process of its own)."""
    try:
        import resource
    except ImportError:  # not on this platform
        return None
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kiln_lab.core.worker")
    parser.add_argument("run_id")
    parser.add_argument("--store", type=Path, default=None)
    args = parser.parse_args(argv)
    store = RunStore(args.store)
    flag_holder: list[CancelFlag] = []

    def on_signal(signum: int, _frame: object) -> None:
        for flag in flag_holder:
            flag.event.set()
        store_cancel = RunStore(store.path)
        store_cancel.request_cancel(args.run_id)
        store_cancel.close()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    kill_at_stage = os.environ.get(KILL_AT_STAGE_VARIABLE)
    return run_with_reserve(
        store, args.run_id, lambda: execute_run(store, args.run_id, kill_at_stage=kill_at_stage)
    )


if __name__ == "__main__":
    sys.exit(main())
