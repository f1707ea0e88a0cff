"""Run a matrix's cells on this host: each cell is a normal run in its own worker.

One cell at a time by default. With ``jobs`` above one, cells run side by side only
where their profiles allow it without oversubscribing the cores: a profile that fixes
its threads (``defaults.intra_op_threads``) takes that many cores, one that leaves
threads to the runtime takes them all (ONNX Runtime and OpenVINO size their pools to
the machine), and cells start only while the cores they take fit in the usable ones.

The workers are detached like ``kiln run``'s: a driver killed mid-matrix leaves its
running cells running, and the next driver waits for them instead of starting them
again.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kiln_lab.core.matrix.cells import PENDING, RESUMABLE, cell_status, cells_to_run
from kiln_lab.core.runconfig import RunConfig
from kiln_lab.core.store_matrix import CellRecord

Notify = Callable[[str], None]


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cores_taken(profile_name: str, usable: int) -> int:
    """The cores one run of this profile keeps busy (see the module docstring)."""
    from kiln_lab.core.profiles import get_profile

    threads = get_profile(profile_name).defaults.intra_op_threads
    return max(1, min(threads, usable)) if threads else usable


def describe_end(record: Any, took: float) -> str:
    """``succeeded in 12.3 s`` / ``failed: Parity check failed: ...``, for progress lines."""
    if record.status == "succeeded":
        return f"succeeded in {took:.1f} s"
    error = record.error or {}
    return f"{record.status}: {error.get('title', '')}: {error.get('message', '')}".rstrip(": ")


@dataclass
class _Running:
    cell: CellRecord
    cores: int
    started: float = field(default_factory=time.monotonic)


class LocalDriver:
    """Sees a matrix's remaining cells through on this host (:func:`run_local`)."""

    def __init__(
        self,
        store: Any,
        matrix_id: str,
        *,
        jobs: int = 1,
        notify: Notify = lambda line: None,
        poll_s: float = 0.5,
    ) -> None:
        self.store = store
        self.matrix_id = matrix_id
        self.jobs = max(1, jobs)
        self.notify = notify
        self.poll_s = poll_s
        self.usable = usable_cores()
        self.running: dict[str, _Running] = {}
        self.host = socket.gethostname()

    def run(self) -> None:
        queue = cells_to_run(self.store, self.matrix_id)
        try:
            while queue or self.running:
                queue = self._start_what_fits(queue)
                self._collect_finished()
                if queue or self.running:
                    time.sleep(self.poll_s)
        except KeyboardInterrupt:
            for run_id in self.running:
                self.store.request_cancel(run_id)
            if self.running:
                self.notify(
                    f"cancelling {len(self.running)} running cell(s); "
                    f"`kiln matrix resume {self.matrix_id}` continues the matrix"
                )
            raise

    def _start_what_fits(self, queue: list[CellRecord]) -> list[CellRecord]:
        waiting = []
        for cell in queue:
            status = cell_status(self.store, cell)
            if status not in (PENDING, "queued", *RESUMABLE):
                # Still running under a worker an earlier driver started: wait for it.
                cores = cores_taken(str(cell.cell["profile"]), self.usable)
                self.running[cell.run_id or ""] = _Running(cell, cores)
                self.notify(f"· {cell.label}: still running as {cell.run_id}, following it")
                continue
            cores = cores_taken(str(cell.cell["profile"]), self.usable)
            used = sum(r.cores for r in self.running.values())
            if len(self.running) >= self.jobs or (self.running and used + cores > self.usable):
                waiting.append(cell)
                continue
            self._start(cell, status, cores)
        return waiting

    def _start(self, cell: CellRecord, status: str, cores: int) -> None:
        from kiln_lab.core.launcher import launch, resume

        if status == PENDING:
            assert cell.config is not None  # a pending cell was planned runnable
            run_id = launch(RunConfig.from_dict(cell.config), self.store)
            what = f"started run {run_id}"
        else:
            run_id = str(cell.run_id)
            if status == "queued":  # its driver died before the worker started
                self.store.set_status(run_id, "interrupted")
            resume(self.store, run_id)
            what = f"resumed run {run_id} from its stored progress"
        self.store.update_cell(
            self.matrix_id,
            cell.position,
            run_id=run_id,
            host=self.host,
            node_id=None,
            attempts=cell.attempts + 1,
        )
        self.running[run_id] = _Running(cell, cores)
        self.notify(f"▶ {cell.label}: {what}")

    def _collect_finished(self) -> None:
        for run_id in list(self.running):
            self.store.mark_interrupted_if_dead(run_id)
            record = self.store.run(run_id)
            if record.finished:
                done = self.running.pop(run_id)
                mark = "✓" if record.status == "succeeded" else "✗"
                took = time.monotonic() - done.started
                self.notify(f"{mark} {done.cell.label}: {describe_end(record, took)}")


def run_local(
    store: Any,
    matrix_id: str,
    *,
    jobs: int = 1,
    notify: Notify = lambda line: None,
    poll_s: float = 0.5,
) -> None:
    """Run every cell of ``matrix_id`` that is not done yet, on this host."""
    LocalDriver(store, matrix_id, jobs=jobs, notify=notify, poll_s=poll_s).run()
