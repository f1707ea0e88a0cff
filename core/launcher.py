"""Start runs in a detached worker process and follow them through the store."""

from __future__ import annotations

import subprocess
import sys

from kiln_lab.core.errors import StoreError
from kiln_lab.core.paths import kiln_home
from kiln_lab.core.runconfig import RunConfig
from kiln_lab.core.store import RunStore


def launch(config: RunConfig, store: RunStore) -> str:
    """Record the run, start its worker in a new session, and return the run id.

    The worker outlives this process on purpose: closing the app or losing the SSH
    link must not stop an evaluation.
    """
    run_id = store.create_run(config.to_dict())
    _spawn(store, run_id)
    return run_id


RESUMABLE = frozenset({"interrupted", "failed", "cancelled"})


def resume(store: RunStore, run_id: str) -> str:
    """Start a new worker for an interrupted (or failed, or cancelled) run."""
    store.mark_interrupted_if_dead(run_id)
    record = store.run(run_id)
    if record.status not in RESUMABLE:
        raise StoreError(
            f"run {record.id} is {record.status}; only interrupted, failed or cancelled runs "
            "can be resumed",
            hint=f"`kiln attach {record.id}` follows a run that is still going",
        )
    store.clear_cancel(record.id)
    _spawn(store, record.id)
    return record.id


def _spawn(store: RunStore, run_id: str) -> None:
    logs = kiln_home() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{run_id}.log"
    # The worker is this interpreter with ``-m kiln_lab.core.worker``: kiln_lab is
    # installed in it (wheel or editable), so it needs no PYTHONPATH and no cwd.
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(  # noqa: S603 - fixed argument list, no shell
            [sys.executable, "-m", "kiln_lab.core.worker", run_id, "--store", str(store.path)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    store.worker_started(run_id, proc.pid)
