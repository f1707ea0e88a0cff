"""One matrix cell on the host Ray placed it on: a normal run, its events handed back.

:class:`CellHost` becomes a Ray actor (``kiln-profile:NAME`` and ``kiln-slots`` decide
where). It records the run in a run store of its own on that host, starts the ordinary
worker (``python -m kiln_lab.core.worker``) on it, and answers the driver's polls with
the events (and evaluation checkpoints) stored since the last one, so the driver's
store holds the run exactly as a local one, live. The worker dies with the actor
(``PR_SET_PDEATHSIG``): a host lost, or a driver gone, leaves no run going unseen.

This module is imported on every host of the cluster, so it needs nothing beyond Kiln.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from kiln_lab.core.events import RunFinished, to_record
from kiln_lab.core.paths import kiln_home

PR_SET_PDEATHSIG = 1
CHECKPOINT_EVERY_S = 2.0
"""How often new evaluation checkpoints travel to the driver (they are per batch)."""
RAY_THREAD_VARIABLES = ("OMP_NUM_THREADS",)
"""Ray sets these for its own workers (1 for an actor that asks no CPU); a cell's worker
must size its threads as a local run does, so they are not passed on."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class CellHost:
    """A cell's run on this host (the Ray actor's class; plain Python for tests)."""

    def __init__(
        self, run_id: str, config: dict[str, Any], checkpoints: dict[str, Any] | None = None
    ) -> None:
        from kiln_lab.core.store import RunStore

        self.run_id = run_id
        self.workdir = kiln_home() / "cluster-cells" / f"{run_id}-{secrets.token_hex(3)}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.store = RunStore(self.workdir / "runs.sqlite")
        self.store.create_run(config, run_id=run_id)
        if checkpoints:
            self.store.save_checkpoints(run_id, checkpoints)
        self.sent_checkpoints = set(checkpoints or ())
        self.checkpoints_at = 0.0
        env = {k: v for k, v in os.environ.items() if k not in RAY_THREAD_VARIABLES}
        with open(self.workdir / "worker.log", "ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - fixed argument list, no shell
                [
                    sys.executable,
                    "-m",
                    "kiln_lab.core.worker",
                    run_id,
                    "--store",
                    str(self.store.path),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - the actor runs no other threads' forks
            )
        self.store.worker_started(run_id, self.proc.pid)

    def where(self) -> dict[str, Any]:
        """The host, its address and Ray node, and where the cell's files are."""
        node_id = ip = None
        with contextlib.suppress(Exception):
            import ray

            node_id = ray.get_runtime_context().get_node_id()
            ip = ray.util.get_node_ip_address()
        return {
            "host": socket.gethostname(),
            "ip": ip,
            "node_id": node_id,
            "workdir": str(self.workdir),
            "worker_pid": self.proc.pid,
        }

    def poll(self, after: int) -> dict[str, Any]:
        """Events stored after seq ``after``, as ``(seq, kind, payload)``, and new checkpoints."""
        stored = self.store.events(self.run_id, after=after, limit=500)
        if not stored and self.proc.poll() is not None:
            # The worker ended without its last word: say so, as a local follower would.
            self.store.mark_interrupted_if_dead(self.run_id)
            stored = self.store.events(self.run_id, after=after, limit=500)
        events = [(s.seq, *to_record(s.event)) for s in stored]
        finished = any(kind == RunFinished.kind for _, kind, _ in events)
        checkpoints: dict[str, Any] = {}
        if finished or time.monotonic() - self.checkpoints_at > CHECKPOINT_EVERY_S:
            self.checkpoints_at = time.monotonic()
            found = self.store.load_checkpoints(self.run_id, "")
            checkpoints = {k: v for k, v in found.items() if k not in self.sent_checkpoints}
            self.sent_checkpoints.update(checkpoints)
        return {"events": events, "checkpoints": checkpoints, "finished": finished}

    def cancel(self) -> None:
        """Ask the worker to stop at its next batch (it records ``cancelled``)."""
        self.store.request_cancel(self.run_id)
