"""Room for a run's last word when the disk fills up under it.

A full disk fails every write, including the one that records *why* the run failed:
without this the worker dies mid-``except``, the run is later marked ``interrupted``
with no cause, and the operator never learns the disk was full. So the worker holds a
small reserve file in ``KILN_HOME`` while it runs; on ``DiskFull`` it deletes the reserve
and records the failure in the room that frees, retrying for a while if even that is
not enough (another process may be filling the same disk), so the cause is stored as
soon as space allows.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from kiln_lab.core.errors import DiskFull, KilnError
from kiln_lab.core.events import RunFinished
from kiln_lab.core.store import RunStore, pid_alive

log = logging.getLogger(__name__)

RESERVE_BYTES = 1 << 20
"""1 MiB: a few hundred SQLite pages, far more than one status update needs."""
NO_RESERVE_WAIT_S = 15.0
"""How long to wait for space when there was no reserve to free: the client follows
the run, so a long silent wait would look like a hang."""


class DiskReserve:
    """A preallocated ``.reserve-PID`` file beside the store, released on demand."""

    def __init__(self, directory: Path, size: int = RESERVE_BYTES) -> None:
        self.path = directory / f".reserve-{os.getpid()}"
        self.size = size
        self.held = False
        """Whether the reserve was made (a disk already full, or read-only, has none)."""

    def __enter__(self) -> DiskReserve:
        remove_stale_reserves(self.path.parent)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)
                self.held = True
            finally:
                os.close(fd)
        except OSError as exc:  # already full, or a read-only KILN_HOME: run without
            log.debug("no disk reserve at %s: %s", self.path, exc)
            self.release()
        return self

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def remove_stale_reserves(directory: Path) -> None:
    """Reserves of workers that died (SIGKILL, power loss) give their space back."""
    for stale in directory.glob(".reserve-*"):
        pid = stale.name.removeprefix(".reserve-")
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                stale.unlink()


def root_disk_full(exc: BaseException) -> DiskFull | None:
    """The first ``DiskFull`` in ``exc``'s chain: where the disk filled, not the later
    failure to record it."""
    found: DiskFull | None = None
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        if isinstance(current, DiskFull):
            found = current
        current = current.__cause__ or current.__context__
    return found


def record_disk_full(
    store: RunStore,
    run_id: str,
    error: DiskFull,
    reserve: DiskReserve,
    *,
    wait_s: float = 300.0,
    poll_s: float = 2.0,
) -> bool:
    """Release the reserve and record the run as failed with ``error``; True once stored.

    Retries for up to ``wait_s`` while the disk stays full, so a follower sees the real
    cause rather than an ``interrupted`` run with none.
    """
    if not reserve.held:
        wait_s = min(wait_s, NO_RESERVE_WAIT_S)
    reserve.release()
    deadline = time.monotonic() + wait_s
    while True:
        try:
            store.finish_run(run_id, RunFinished("failed", error=error.to_dict()))
            return True
        except KilnError as exc:
            if not isinstance(exc, DiskFull) or time.monotonic() >= deadline:
                log.error("could not record %s's failure (%s): %s", run_id, error, exc)
                return False
        time.sleep(poll_s)


def run_with_reserve(store: RunStore, run_id: str, execute: Callable[[], int]) -> int:
    """``execute()`` (the worker's run) with a reserve held; a full disk that stopped it
    from recording its end is recorded here. Returns the exit code."""
    with DiskReserve(store.path.parent) as reserve:
        try:
            return execute()
        except KilnError as exc:
            error = root_disk_full(exc)
            if error is None:
                raise
            log.error("%s", error.one_line())
            record_disk_full(store, run_id, error, reserve)
            return error.exit_code
