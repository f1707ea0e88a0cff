"""Resume: a worker killed with SIGKILL mid-evaluation loses nothing it finished, and the
resumed run's final metrics equal an uninterrupted run's."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from kiln_lab.core.errors import StoreError
from kiln_lab.core.events import RunFinished, StageStarted
from kiln_lab.core.launcher import launch, resume
from kiln_lab.core.pipeline import run_pipeline
from kiln_lab.core.runconfig import RunConfig
from kiln_lab.core.store import RunStore, pid_alive

# Fixed padding to 128 with batch 1 keeps the tiny model's evaluation long enough (several
# seconds) for a signal to land mid-way on a fast machine.
CONFIG = RunConfig(model="tiny-ner-bert", limit=3000, batch_size=1, padding="fixed")


def _evaluating(store: RunStore, run_id: str) -> bool:
    return any(
        isinstance(s.event, StageStarted) and s.event.stage_name == "evaluate"
        for s in store.events(run_id)
    )


def _wait(predicate, timeout: float = 120.0, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(step)


def test_sigkill_then_resume_equals_uninterrupted(tiny_assets: Path, kiln_home: Path) -> None:
    store = RunStore()
    run_id = launch(CONFIG, store)
    _wait(lambda: _evaluating(store, run_id))
    _wait(lambda: len(store.load_checkpoints(run_id, "evaluate/")) >= 1)
    pid = store.run(run_id).pid
    os.kill(pid, signal.SIGKILL)
    _wait(lambda: not pid_alive(pid))
    kept = len(store.load_checkpoints(run_id, "evaluate/"))
    assert 1 <= kept < 3000, "the kill should land mid-evaluation"

    assert store.mark_interrupted_if_dead(run_id)
    record = store.run(run_id)
    assert record.status == "interrupted"
    events = [s.event for s in store.events(run_id)]
    assert any(isinstance(e, StageStarted) and e.stage_name == "evaluate" for e in events)
    assert isinstance(events[-1], RunFinished) and events[-1].status == "interrupted"

    resume(store, run_id)
    final = [s.event for s in store.tail(run_id, after=len(events))]
    assert isinstance(final[-1], RunFinished) and final[-1].status == "succeeded"
    resumed = store.run(run_id).result

    uninterrupted = run_pipeline(CONFIG, "reference", lambda e: None)
    assert resumed["metrics"] == uninterrupted["metrics"]
    assert resumed["examples"] == 3000


def test_only_stopped_runs_resume(tiny_assets: Path, kiln_home: Path) -> None:
    store = RunStore()
    run_id = store.create_run(CONFIG.to_dict())
    store.set_status(run_id, "succeeded", result={})
    with pytest.raises(StoreError, match="only interrupted, failed or cancelled"):
        resume(store, run_id)


def test_ctrl_c_cancels_cleanly_with_exit_130(tiny_assets: Path, kiln_home: Path) -> None:
    import subprocess
    import sys

    env = {**os.environ, "KILN_HOME": str(kiln_home)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kiln_lab.tui.cli",
            "run",
            "--model",
            "tiny-ner-bert",
            "--limit",
            "3000",
            "--batch-size",
            "1",
            "--padding",
            "fixed",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    store = RunStore()
    _wait(lambda: bool(store.runs()) and store.runs()[0].status == "running")
    run_id = store.runs()[0].id
    _wait(lambda: _evaluating(store, run_id))
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    record = store.run(run_id)
    assert record.status == "cancelled"
    assert store.load_checkpoints(run_id, "evaluate/")  # partial results kept
    assert isinstance(store.events(run_id)[-1].event, RunFinished)


def test_store_under_concurrent_writers_and_a_reader(tmp_path: Path) -> None:
    """Two writing processes and a reading thread: no 'database is locked'."""
    import subprocess
    import sys
    import threading

    path = tmp_path / "runs.sqlite"
    store = RunStore(path)
    ids = [store.create_run({"model": f"m{i}"}) for i in range(2)]
    writer = (
        "import sys\n"
        "from kiln_lab.core.store import RunStore\n"
        "from kiln_lab.core.events import LogLine, MetricSampled\n"
        "s = RunStore(sys.argv[1])\n"
        "for i in range(300):\n"
        "    s.append(sys.argv[2], LogLine('evaluate', 'info', f'line {i}'))\n"
        "    s.append(sys.argv[2], MetricSampled('evaluate', 'throughput', {'samples_per_s': i}))\n"
        "    s.save_checkpoints(sys.argv[2], {f'evaluate/{i:06d}': [i]})\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", writer, str(path), run_id], stderr=subprocess.PIPE, text=True
        )
        for run_id in ids
    ]
    errors: list[BaseException] = []

    def read() -> None:
        reader = RunStore(path)
        try:
            while any(p.poll() is None for p in procs):
                for run_id in ids:
                    reader.events(run_id, after=0, limit=100)
                    reader.runs()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=read)
    thread.start()
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    thread.join()
    assert not errors
    for run_id in ids:
        assert len(store.events(run_id)) == 600
        assert len(store.load_checkpoints(run_id, "evaluate/")) == 300


def test_sigterm_to_the_client_still_prints_one_json_object(
    tiny_assets: Path, kiln_home: Path
) -> None:
    """A script's client killed by SIGTERM (a CI timeout, a supervisor) still says where
    the run stands, on stdout, as JSON; the run is cancelled as with Ctrl-C."""
    import json
    import subprocess
    import sys

    env = {**os.environ, "KILN_HOME": str(kiln_home)}
    argv = [sys.executable, "-m", "kiln_lab.tui.cli", "run", "--model", "tiny-ner-bert"]
    argv += ["--limit", "3000", "--batch-size", "1", "--padding", "fixed", "--json"]
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    store = RunStore()
    _wait(lambda: bool(store.runs()) and store.runs()[0].status == "running")
    run_id = store.runs()[0].id
    _wait(lambda: _evaluating(store, run_id))
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr
    shown = json.loads(stdout)
    assert shown["run_id"] == run_id and shown["status"] == "cancelled"
    assert store.run(run_id).status == "cancelled"
