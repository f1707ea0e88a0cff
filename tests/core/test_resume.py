"""Resume from an interruption at every stage, and follow a resumed run to its end.

The worker is SIGKILLed as each stage starts, resumed, and must end with the metrics of
an uninterrupted run, each artifact recorded once, speed figures over the whole
evaluation and no stale error. Most stages of the tiny model last milliseconds, so the
kill is made deterministic with the worker's test-only ``KILN_TEST_KILL_AT_STAGE`` hook:
the worker SIGKILLs its own process group right after storing that stage's start. The
test then kills the group too (a no-op by then, but what an operator's ``kill -9``
would do) and waits for it to die. ``kiln resume`` and ``kiln attach`` are then run
through the real CLI in a subprocess.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kiln_lab.core.events import RunFinished, StageSkipped, StageStarted
from kiln_lab.core.launcher import launch, resume
from kiln_lab.core.pipeline import run_pipeline
from kiln_lab.core.runconfig import RunConfig
from kiln_lab.core.stages import STAGES
from kiln_lab.core.store import RunStore, pid_alive
from kiln_lab.core.worker import KILL_AT_STAGE_VARIABLE

ONNXRUNTIME = RunConfig(model="tiny-ner-bert", limit=48, batch_size=8)
EXTERNAL = RunConfig(
    model="tiny-ner-bert",
    profile="cpu-external-ort",
    limit=48,
    batch_size=8,
)

_reference: dict[str, dict[str, Any]] = {}


def _uninterrupted(config: RunConfig) -> dict[str, Any]:
    """An uninterrupted run's result, computed once per config in this session."""
    key = config.profile
    if key not in _reference:
        _reference[key] = run_pipeline(config, "reference", lambda e: None)
    return _reference[key]


def _wait(predicate: Callable[[], bool], timeout: float = 180.0, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(step)


def _reached(store: RunStore, run_id: str, stage: str) -> bool:
    return any(
        isinstance(s.event, StageStarted | StageSkipped) and s.event.stage_name == stage
        for s in store.events(run_id)
    )


def kill_at(store: RunStore, config: RunConfig, stage: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Launch ``config``, SIGKILL its worker's process group as ``stage`` starts; the
    run id of the now-dead run."""
    monkeypatch.setenv(KILL_AT_STAGE_VARIABLE, stage)
    run_id = launch(config, store)
    monkeypatch.delenv(KILL_AT_STAGE_VARIABLE)  # the resumed worker must not inherit it
    _wait(lambda: _reached(store, run_id, stage) or not pid_alive(store.run(run_id).pid))
    pid = store.run(run_id).pid
    assert pid
    # The worker leads its own session and group; the hook may have got there first.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    _wait(lambda: not pid_alive(pid))
    assert _reached(store, run_id, stage), "the worker died before the stage began"
    return run_id


def _check_resumes(store: RunStore, run_id: str, config: RunConfig) -> dict[str, Any]:
    """Resume the dead run; check it against an uninterrupted one; its stored result."""
    assert store.mark_interrupted_if_dead(run_id)
    assert store.run(run_id).status == "interrupted"
    after = store.last_seq(run_id)
    resume(store, run_id)
    final = [s.event for s in store.tail(run_id, after=after)]
    assert isinstance(final[-1], RunFinished), final[-1]
    record = store.run(run_id)
    assert final[-1].status == "succeeded", record.error
    assert record.status == "succeeded"
    assert record.error is None, "a successful resume keeps no error from before"

    reference = _uninterrupted(config)
    assert record.result["metrics"] == reference["metrics"]
    assert record.result["examples"] == reference["examples"]
    names = [(a["name"], a["path"]) for a in store.artifacts(run_id)]
    assert len(names) == len(set(names)), f"artifacts recorded twice: {names}"
    throughput = record.result.get("throughput")
    if throughput is not None:  # evaluate ran: its figures cover every example
        assert throughput["samples"] == reference["examples"]
        if throughput.get("resumed_batches"):
            assert throughput["covers"] == "whole evaluation"
    return record.result


LATE_STAGES = ("report",)
"""The default suite's case: every evaluation batch is checkpointed before the kill, the
case that used to fail with ``NOT NULL constraint failed: metrics.value``."""


@pytest.mark.parametrize(
    "stage",
    [s if s in LATE_STAGES else pytest.param(s, marks=pytest.mark.slow) for s in STAGES],
)
def test_kill_at_each_stage_then_resume(
    stage: str, tiny_assets: Path, kiln_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RunStore()
    run_id = kill_at(store, ONNXRUNTIME, stage, monkeypatch)
    result = _check_resumes(store, run_id, ONNXRUNTIME)
    if STAGES.index(stage) > STAGES.index("evaluate"):
        # Every batch came from the checkpoints, yet the speed figures are the whole
        # evaluation's (48 examples in batches of up to 8), labelled as such.
        throughput = result["throughput"]
        assert throughput["covers"] == "whole evaluation"
        assert throughput["resumed_batches"] == throughput["batches"] >= 6
        assert throughput["samples_per_s"] > 0
        assert result["latency"]["count"] == throughput["batches"]


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["compile", "evaluate", "report"])
def test_kill_at_stage_then_resume_external_tools(
    stage: str, tiny_assets: Path, kiln_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RunStore()
    run_id = kill_at(store, EXTERNAL, stage, monkeypatch)
    _check_resumes(store, run_id, EXTERNAL)


# -- following a resumed run through the real CLI ----------------------------------------


def _cli(kiln_home: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KILN_HOME": str(kiln_home)}
    env.pop(KILL_AT_STAGE_VARIABLE, None)
    return subprocess.run(  # noqa: S603 - fixed argument list, no shell
        [sys.executable, "-m", "kiln_lab.tui.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_cli_resume_json_follows_to_the_real_end(
    tiny_assets: Path, kiln_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``kiln resume RUN --json`` waits for the resumed attempt, not the killed one."""
    store = RunStore()
    run_id = kill_at(store, ONNXRUNTIME, "evaluate", monkeypatch)
    done = _cli(kiln_home, "resume", run_id, "--json")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    record = store.run(run_id)
    assert printed["status"] == record.status == "succeeded"
    assert printed["metrics"] == record.result["metrics"] == _uninterrupted(ONNXRUNTIME)["metrics"]
    assert printed["error"] is None


@pytest.mark.slow
def test_cli_attach_json_on_a_resumed_run_follows_to_the_real_end(
    tiny_assets: Path, kiln_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``kiln resume --detach`` returns at once; ``kiln attach --json`` then follows the
    resumed attempt past the earlier attempt's ``RunFinished(interrupted)``."""
    store = RunStore()
    run_id = kill_at(store, ONNXRUNTIME, "export", monkeypatch)
    detached = _cli(kiln_home, "resume", run_id, "--detach")
    assert detached.returncode == 0, detached.stderr
    assert detached.stdout == ""
    assert not store.run(run_id).finished, "the resumed worker should still be going"
    attached = _cli(kiln_home, "attach", run_id, "--json")
    assert attached.returncode == 0, attached.stderr
    printed = json.loads(attached.stdout)
    record = store.run(run_id)
    assert printed["status"] == record.status == "succeeded"
    assert printed["metrics"] == record.result["metrics"] == _uninterrupted(ONNXRUNTIME)["metrics"]
