"""The end of a run: whoever sees ``RunFinished`` must read a finished record.

The CLI stops following at ``RunFinished`` and reads the run's row at once; the worker
used to write the event first and the status after, so a quick reader could print
``running`` with no figures for a run that had succeeded. This hammers the worker's
finish path from one thread while another reads, with a separate connection, as the
CLI does.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from kiln_lab.core.events import LogLine, RunFinished
from kiln_lab.core.store import TERMINAL_STATUSES, RunStore
from kiln_lab.core.worker import StoreEmitter

ENDINGS = (
    RunFinished("succeeded", result={"metrics": {"entity_f1": 0.5}}),
    RunFinished("failed", error={"kind": "DataError", "title": "Bad data", "message": "x"}),
    RunFinished("cancelled", error={"kind": "Cancelled", "title": "Cancelled", "message": "x"}),
)


def test_run_finished_is_never_seen_before_the_final_record(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    writer = RunStore(path)
    current: list[str] = []
    done = threading.Event()
    seen: list[str] = []
    problems: list[str] = []

    def read() -> None:
        reader = RunStore(path)
        while not done.is_set():
            if not current:
                continue
            run_id = current[-1]
            events = reader.events(run_id)
            finished = [s.event for s in events if isinstance(s.event, RunFinished)]
            if not finished:
                continue
            record = reader.run(run_id)
            seen.append(run_id)
            if record.status not in TERMINAL_STATUSES:
                problems.append(f"{run_id}: RunFinished visible, record says {record.status}")
            elif finished[-1].status == "succeeded" and not record.result:
                problems.append(f"{run_id}: succeeded without a stored result")
            elif finished[-1].status != "succeeded" and not record.error:
                problems.append(f"{run_id}: {record.status} without a stored error")
        reader.close()

    thread = threading.Thread(target=read)
    thread.start()
    deadline = time.monotonic() + 8.0
    runs = 0
    try:
        while runs < 400 and time.monotonic() < deadline:
            run_id = writer.create_run({"model": "m"}, run_id=f"run-{runs:04d}")
            writer.set_status(run_id, "running", pid=1)
            emit = StoreEmitter(writer, run_id)
            emit(LogLine("report", "info", "writing the report"))
            current.append(run_id)
            emit.finish(ENDINGS[runs % len(ENDINGS)])
            runs += 1
            time.sleep(0.001)  # let the reader poll between runs, as a follower would
    finally:
        done.set()
        thread.join()
    assert not problems, problems[:5]
    assert runs >= 50 and len(seen) >= 50, (runs, len(seen))


def test_mark_interrupted_writes_status_with_its_event(tmp_path: Path) -> None:
    """A dead worker's run: the interrupted event and status land together."""
    store = RunStore(tmp_path / "runs.sqlite")
    run_id = store.create_run({"model": "m"})
    store.set_status(run_id, "running", pid=2**22 + 12345)  # no such process
    assert store.mark_interrupted_if_dead(run_id)
    last = store.events(run_id)[-1].event
    record = store.run(run_id)
    assert isinstance(last, RunFinished) and last.status == "interrupted"
    assert record.status == "interrupted" and record.error is not None


def test_success_clears_an_earlier_attempts_error(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    run_id = store.create_run({"model": "m"})
    store.finish_run(run_id, ENDINGS[2])  # the first attempt was cancelled
    assert store.run(run_id).error is not None
    store.finish_run(run_id, ENDINGS[0])  # the resumed attempt succeeded
    record = store.run(run_id)
    assert record.status == "succeeded" and record.error is None and record.result
