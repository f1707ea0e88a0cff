"""Run a matrix's cells on a Ray cluster, each on a host that offers its profile.

Every cell is a Ray actor (:class:`~kiln_lab.core.matrix.remote_cell.CellHost`) asking
for ``kiln-profile:NAME`` and one ``kiln-slots`` (:mod:`kiln_lab.core.matrix.hosts`),
so Ray places it only where its profile is available. The driver records each cell as
an ordinary run in its own store, polls the actors and writes their events into that
store as they come, so ``kiln attach`` and the app follow a remote cell like a local
one; the run row carries the driver's pid, so a driver gone leaves it interrupted (and
resumable), never "running" forever.

A cell whose profile no live host offers is reported at once, never left pending. A
host lost mid-cell (its actor dies) closes that attempt as interrupted and the cell is
placed again on a host that offers the profile, up to ``retries`` times, said in the
run's log; evaluation checkpoints travel with the events, so the retry continues from
the last batch the lost host finished.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kiln_lab.core.errors import ClusterError, ToolchainMissing
from kiln_lab.core.events import LogLine, RunFinished, from_record
from kiln_lab.core.matrix.cells import PENDING, RESUMABLE, cell_status, cells_to_run
from kiln_lab.core.matrix.hosts import PROFILE_RESOURCE, SLOTS_RESOURCE, profile_resource
from kiln_lab.core.store_matrix import CellRecord

log = logging.getLogger(__name__)
Notify = Callable[[str], None]
INSTALL_HINT = (
    "pip install 'kiln-lab[cluster]' (Ray 2.60) on this host and on every host that joins"
)
FEASIBILITY_EVERY_S = 2.0


def import_ray() -> Any:
    """Ray, or a one-line error that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ToolchainMissing(
            "--cluster runs cells on Ray, which is not installed here", hint=INSTALL_HINT
        ) from None
    return ray


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Refuse an address nothing answers on in seconds (Ray itself retries for minutes)."""
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(
            f"{address!r} is not a cluster address",
            hint="give HOST:PORT of the Ray head (HOST:6379), or ray://HOST:10001",
        )
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ClusterError(
            f"nothing answers at {address} ({exc.strerror or exc})",
            hint="start the head with `kiln cluster head` there, or check the address "
            "and that the lab network lets this host reach that port",
        ) from None


def connect(address: str) -> bool:
    """Connect this process to the cluster at ``address``; True if this call connected."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    _check_reachable(address)
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(
            f"cannot reach the Ray cluster at {address}: {str(exc).splitlines()[0][:200]}",
            hint="start the head with `kiln cluster head` and give its address "
            "(HOST:6379, or ray://HOST:10001 from outside the cluster)",
        ) from None
    return True


def offered_profiles(ray: Any) -> dict[str, list[str]]:
    """Live nodes' host addresses by the profile they offer."""
    offered: dict[str, list[str]] = {}
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        for name in node.get("Resources", {}):
            if name.startswith(PROFILE_RESOURCE):
                offered.setdefault(name.removeprefix(PROFILE_RESOURCE), []).append(
                    str(node.get("NodeManagerAddress"))
                )
    return offered


@dataclass
class _Attempt:
    cell: CellRecord
    run_id: str
    actor: Any
    number: int
    ref: Any = None
    placed: bool = False
    after: int = 0
    host: str | None = None
    next_poll: float = 0.0
    started: float = field(default_factory=time.monotonic)


class ClusterDriver:
    """Sees a matrix's remaining cells through on a Ray cluster (:func:`run_cluster`)."""

    def __init__(
        self,
        store: Any,
        matrix_id: str,
        *,
        retries: int = 2,
        notify: Notify = lambda line: None,
        poll_s: float = 0.3,
    ) -> None:
        self.ray = import_ray()
        self.store = store
        self.matrix_id = matrix_id
        self.retries = retries
        self.notify = notify
        self.poll_s = poll_s
        self.attempts: dict[str, _Attempt] = {}
        self.offered: dict[str, list[str]] = {}
        self.checked_at = 0.0

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> None:
        self.offered = offered_profiles(self.ray)
        self.checked_at = time.monotonic()
        try:
            for cell in cells_to_run(self.store, self.matrix_id):
                self._submit(cell)
            while self.attempts:
                self._step()
        except BaseException:
            self._abandon("the matrix driver stopped")
            raise

    def _step(self) -> None:
        now = time.monotonic()
        for attempt in self.attempts.values():
            if attempt.ref is None and now >= attempt.next_poll:
                attempt.ref = attempt.actor.poll.remote(attempt.after)
                if self.store.cancel_requested(attempt.run_id):
                    attempt.actor.cancel.remote()
        refs = [a.ref for a in self.attempts.values() if a.ref is not None]
        ready = set()
        if refs:
            done, _ = self.ray.wait(refs, num_returns=len(refs), timeout=self.poll_s)
            ready = set(done)
        else:
            time.sleep(self.poll_s)
        for attempt in list(self.attempts.values()):
            if attempt.ref is None or attempt.ref not in ready:
                continue
            ref, attempt.ref = attempt.ref, None
            try:
                answer = self.ray.get(ref)
            except self.ray.exceptions.RayError as exc:
                self._lost(attempt, exc)
                continue
            if not attempt.placed:
                self._placed(attempt, answer)
            else:
                self._relay(attempt, answer)
            attempt.next_poll = time.monotonic() + (0 if answer.get("events") else self.poll_s)
        if time.monotonic() - self.checked_at > FEASIBILITY_EVERY_S:
            self._check_feasible()

    # -- placing cells -------------------------------------------------------------------
    def _submit(self, cell: CellRecord) -> None:
        from kiln_lab.core.matrix.remote_cell import CellHost

        status = cell_status(self.store, cell)
        profile = str(cell.cell["profile"])
        if status not in (PENDING, "queued", *RESUMABLE):
            self.notify(f"· {cell.label}: {cell.run_id} is {status} under another driver; left")
            return
        if profile not in self.offered:
            self._unschedulable(cell, profile)
            return
        if cell.run_id is None:
            assert cell.config is not None  # planned runnable
            run_id = self.store.create_run(cell.config)
            checkpoints: dict[str, Any] = {}
        else:
            run_id = cell.run_id
            self.store.clear_cancel(run_id)
            checkpoints = self.store.load_checkpoints(run_id, "")
        config = self.store.run(run_id).config
        number = cell.attempts + 1
        self.store.update_cell(self.matrix_id, cell.position, run_id=run_id, attempts=number)
        # The driver answers for the run while the cell is away: a driver gone leaves it
        # interrupted (pid dead), not running forever.
        self.store.set_status(run_id, "starting", pid=os.getpid())
        actor = (
            self.ray.remote(CellHost)
            .options(
                num_cpus=0,
                resources={profile_resource(profile): 1, SLOTS_RESOURCE: 1},
                max_restarts=0,
            )
            .remote(run_id, config, checkpoints or None)
        )
        attempt = _Attempt(cell, run_id, actor, number)
        attempt.ref = actor.where.remote()
        self.attempts[run_id] = attempt
        resumed = f", resuming {len(checkpoints)} checkpoint(s)" if checkpoints else ""
        self.notify(f"… {cell.label}: run {run_id} waits for a host offering {profile}{resumed}")

    def _placed(self, attempt: _Attempt, where: dict[str, Any]) -> None:
        attempt.placed = True
        host = f"{where.get('host')} ({where.get('ip')})"
        attempt.host = host
        self.store.update_cell(
            self.matrix_id, attempt.cell.position, host=host, node_id=where.get("node_id")
        )
        self.store.set_status(attempt.run_id, "running", pid=os.getpid())
        line = (
            f"cell placed by Ray on host {host}, node {str(where.get('node_id'))[:12]} "
            f"(attempt {attempt.number}); its files stay on that host under {where.get('workdir')}"
        )
        self.store.append(attempt.run_id, LogLine(None, "info", line, __name__))
        self.notify(f"▶ {attempt.cell.label}: run {attempt.run_id} on {host}")

    def _relay(self, attempt: _Attempt, answer: dict[str, Any]) -> None:
        events = answer.get("events") or []
        if answer.get("checkpoints"):
            self.store.save_checkpoints(attempt.run_id, answer["checkpoints"])
        body = [from_record(kind, payload) for _, kind, payload in events]
        if events:
            attempt.after = events[-1][0]
        finish = next((e for e in body if isinstance(e, RunFinished)), None)
        rest = [e for e in body if not isinstance(e, RunFinished)]
        if rest:
            self.store.append_many(attempt.run_id, rest)
        if finish is not None:
            self.store.finish_run(attempt.run_id, finish)
            self._close(attempt)
            mark = "✓" if finish.status == "succeeded" else "✗"
            took = time.monotonic() - attempt.started
            error = finish.error or {}
            detail = f": {error.get('title')}: {error.get('message')}" if error else ""
            self.notify(
                f"{mark} {attempt.cell.label}: {finish.status} on {attempt.host} "
                f"in {took:.1f} s{detail}"
            )

    # -- what goes wrong -----------------------------------------------------------------
    def _unschedulable(self, cell: CellRecord, profile: str) -> None:
        hosts = ", ".join(sorted(self.offered)) or "no Kiln profile at all"
        reason = (
            f"no host in the cluster offers profile {profile} (the hosts offer: {hosts}) "
            f"(fix: run `kiln cluster join HEAD:6379` on a host where `kiln doctor` shows "
            f"{profile} available)"
        )
        self.store.update_cell(self.matrix_id, cell.position, reason=reason)
        self.notify(f"✗ {cell.label}: cannot be scheduled: {reason}")

    def _lost(self, attempt: _Attempt, exc: BaseException) -> None:
        self._close(attempt, kill=True)
        profile = str(attempt.cell.cell["profile"])
        where = attempt.host or "the host Ray chose"
        cause = type(exc).__name__
        self.offered = offered_profiles(self.ray)
        retry = attempt.number <= self.retries and profile in self.offered
        line = (
            f"{where} was lost mid-cell ({cause}, attempt {attempt.number} of "
            f"{self.retries + 1}); "
            + (
                f"retrying on a host that offers {profile}"
                if retry
                else "no retry left"
                if profile in self.offered
                else f"no live host offers {profile} now"
            )
        )
        log.warning("%s: %s", attempt.run_id, line)
        self.store.append(attempt.run_id, LogLine(None, "warning", line, __name__))
        self.notify(f"! {attempt.cell.label}: {line}")
        status = "interrupted" if retry else "failed"
        self.store.finish_run(
            attempt.run_id,
            RunFinished(
                status,
                error={
                    "kind": "HostLost",
                    "title": "Host lost",
                    "message": line,
                    "hint": f"`kiln matrix resume {self.matrix_id}` places it again",
                },
            ),
        )
        if retry:
            self._submit(self._fresh(attempt.cell))

    def _check_feasible(self) -> None:
        """Cells waiting for a profile that no live host offers any more fail at once."""
        self.checked_at = time.monotonic()
        self.offered = offered_profiles(self.ray)
        for attempt in list(self.attempts.values()):
            profile = str(attempt.cell.cell["profile"])
            if not attempt.placed and profile not in self.offered:
                self._close(attempt, kill=True)
                self._unschedulable(attempt.cell, profile)
                self.store.finish_run(
                    attempt.run_id,
                    RunFinished(
                        "failed",
                        error={
                            "kind": "Unschedulable",
                            "title": "No host can run this cell",
                            "message": f"no live host offers profile {profile}",
                            "hint": "join a host that offers it, then "
                            f"`kiln matrix resume {self.matrix_id}`",
                        },
                    ),
                )

    def _abandon(self, why: str) -> None:
        """Stop every cell still away (Ctrl-C, an error): each is left interrupted."""
        for attempt in list(self.attempts.values()):
            self._close(attempt, kill=True)
            if not self.store.run(attempt.run_id).finished:
                self.store.finish_run(
                    attempt.run_id,
                    RunFinished(
                        "interrupted",
                        error={
                            "kind": "Interrupted",
                            "title": "Run interrupted",
                            "message": why,
                            "hint": f"`kiln matrix resume {self.matrix_id}` continues it",
                        },
                    ),
                )

    def _close(self, attempt: _Attempt, *, kill: bool = True) -> None:
        self.attempts.pop(attempt.run_id, None)
        if kill:
            try:
                self.ray.kill(attempt.actor)
            except Exception as exc:  # noqa: BLE001 - a dead actor needs no killing
                log.debug("kill %s: %s", attempt.run_id, exc)

    def _fresh(self, cell: CellRecord) -> CellRecord:
        return next(
            c for c in self.store.matrix_cells(self.matrix_id) if c.position == cell.position
        )


def run_cluster(
    store: Any,
    matrix_id: str,
    address: str,
    *,
    retries: int = 2,
    notify: Notify = lambda line: None,
    poll_s: float = 0.3,
) -> None:
    """Run every cell of ``matrix_id`` that is not done yet on the cluster at ``address``."""
    ray = import_ray()
    connected = connect(address)
    try:
        ClusterDriver(store, matrix_id, retries=retries, notify=notify, poll_s=poll_s).run()
    finally:
        if connected:
            ray.shutdown()
