"""The SQLite run store: every run, every event, every artifact, as it happens.

The worker process appends; the app and ``kiln attach`` tail. WAL mode lets readers
and one writer work at once, a busy timeout absorbs short write contention, and every
write is its own short transaction so a killed worker loses nothing already emitted.
The file carries an application id and a schema version so Kiln never mistakes (or
overwrites) a foreign or corrupt database.

Longer than Kiln's usual module on purpose: it is one class over one SQLite
connection, and its locking, transactions and schema checks must be read together;
every method is one short transaction.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from kiln_lab.core.errors import RunNotFound, StoreError
from kiln_lab.core.events import Event, RunFinished, from_record, to_record
from kiln_lab.core.paths import kiln_home
from kiln_lab.core.result import RunResult
from kiln_lab.core.store_matrix import MATRIX_SCHEMA, MatrixTables
from kiln_lab.core.store_open import WalWatch, locked, open_store, translate

APPLICATION_ID = 0x4B494C4E  # "KILN"
SCHEMA_VERSION = 2
"""1: runs, events, metrics, artifacts, checkpoints. 2: + matrices, matrix_cells
(:mod:`kiln_lab.core.store_matrix`), added to a version-1 store when it is opened."""

_log = logging.getLogger(__name__)

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "interrupted"})
CANCEL, STOP_EVALUATION = 1, 2
"""Values of ``runs.cancel_requested``: cancel the run; stop its evaluation early."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    status TEXT NOT NULL,
    model TEXT NOT NULL,
    dataset TEXT NOT NULL,
    profile TEXT NOT NULL,
    precision TEXT NOT NULL,
    config TEXT NOT NULL,
    result TEXT,
    error TEXT,
    pid INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL REFERENCES runs(id),
    seq INTEGER NOT NULL,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    stage TEXT,
    payload TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(id),
    seq INTEGER NOT NULL,
    ts REAL NOT NULL,
    stage TEXT NOT NULL,
    grp TEXT NOT NULL,
    name TEXT NOT NULL,
    value REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics(run_id, grp, name);
CREATE TABLE IF NOT EXISTS artifacts (
    run_id TEXT NOT NULL REFERENCES runs(id),
    stage TEXT NOT NULL,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    meta TEXT NOT NULL,
    ts REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    run_id TEXT NOT NULL REFERENCES runs(id),
    key TEXT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
"""


@dataclass(frozen=True)
class RunRecord:
    """One row of the run history, as the CLI and the app list it."""

    id: str
    created: float
    updated: float
    status: str
    model: str
    dataset: str
    profile: str
    precision: str
    config: dict[str, Any]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    pid: int | None
    cancel_requested: bool

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @cached_property
    def run_result(self) -> RunResult:
        """``result`` typed; empty for a run that has not finished."""
        return RunResult.from_dict(self.result)

    @property
    def build(self) -> tuple[str, str]:
        """The profile and precision that ran: an ``auto`` run's record says ``auto``, its
        result names the build that was chosen."""
        result = self.run_result
        return result.profile or self.profile, result.precision or self.precision

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created": self.created,
            "updated": self.updated,
            "status": self.status,
            "model": self.model,
            "dataset": self.dataset,
            "profile": self.profile,
            "precision": self.precision,
            "config": self.config,
            "result": self.result,
            "error": self.error,
        }


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    event: Event


def default_store_path() -> Path:
    return kiln_home() / "runs.sqlite"


def new_run_id() -> str:
    """Sortable by time, unique enough for one lab: ``20261122-004700-3fa2``."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


class RunStore(MatrixTables):
    """A connection to one store file; cheap to open, one per thread or process."""

    def __init__(self, path: Path | str | None = None, *, readonly: bool = False) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        # One connection shared by the threads of a process (the worker logs and
        # checkpoints from helper threads); the lock keeps each use whole.
        self._lock = threading.RLock()
        self.readonly_reason: str | None = None
        self._readonly_requested = readonly
        self._wal = WalWatch(self.path)
        self._conn = self._open(readonly)

    def _follow_wal(self) -> None:
        """Checkpoint and reopen when the WAL was deleted under this connection.

        A writer checkpoints first, so what it committed into the deleted WAL reaches
        the main file before a new WAL is started; a reader just reopens.
        """
        why = self._wal.moved()
        if why is None:
            return
        if self.readonly_reason is None:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                _log.warning("checkpoint after the lost WAL failed: %s", exc)
        self._conn.close()
        self._wal.forget()
        _log.warning(
            "%s %s while Kiln had the store open; what was written through it was "
            "checkpointed into %s and the store reopened",
            self._wal.path,
            why,
            self.path,
        )
        self._conn = self._open(self._readonly_requested)

    # -- opening and checking -------------------------------------------------------------
    def _open(self, readonly: bool) -> sqlite3.Connection:
        """Open through ``store_open`` (file checks, read-only fallback, quick_check),
        then check that the file is a Kiln store of a schema this Kiln reads."""
        opened = open_store(self.path, readonly=readonly, initialise=self._initialise)
        conn, self.readonly_reason = opened.conn, opened.readonly_reason
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(
                f"{self.path} is not a readable SQLite database ({exc})",
                path=self.path,
                hint="move the file aside (Kiln never overwrites it) or set KILN_HOME "
                "to another directory",
            ) from None
        if app_id != APPLICATION_ID:
            conn.close()
            raise StoreError(
                "this file is not a Kiln run store (foreign application id)",
                path=self.path,
                hint="point KILN_HOME at a directory of its own; Kiln will not overwrite it",
            )
        if version > SCHEMA_VERSION:
            conn.close()
            raise StoreError(
                f"run store schema version {version} is newer than this Kiln's ({SCHEMA_VERSION})",
                path=self.path,
                hint="upgrade Kiln, or use another KILN_HOME",
            )
        if self.readonly_reason is None:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                self._migrate(conn, version)
            except sqlite3.DatabaseError as exc:
                conn.close()
                raise translate(exc, self.path, None) or StoreError(
                    f"the run store could not be prepared ({exc})",
                    path=self.path,
                    hint="check the disk and the file's permissions; the file was not changed",
                ) from None
        return conn

    @classmethod
    def _initialise(cls, conn: sqlite3.Connection) -> None:
        """The schema, application id and version of a new store (built before it is
        linked into place, so no reader ever sees it half made)."""
        cls._migrate(conn, 0)

    @property
    def readonly(self) -> bool:
        """True when this process cannot write the store (``readonly_reason`` says why)."""
        return self.readonly_reason is not None

    @staticmethod
    def _migrate(conn: sqlite3.Connection, version: int) -> None:
        if version == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in (_SCHEMA + MATRIX_SCHEMA).split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs ------------------------------------------------------------------------------
    @locked
    def create_run(self, config: dict[str, Any], *, run_id: str | None = None) -> str:
        run_id = run_id or new_run_id()
        now = time.time()
        self._conn.execute(
            "INSERT INTO runs (id, created, updated, status, model, dataset, profile, precision,"
            " config) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?)",
            (
                run_id,
                now,
                now,
                str(config.get("model", "")),
                str(config.get("dataset_label", config.get("dataset", "")) or ""),
                str(config.get("profile", "")),
                str(config.get("precision", "")),
                json.dumps(config, ensure_ascii=False),
            ),
        )
        return run_id

    @locked
    def run(self, run_id: str) -> RunRecord:
        row = self._conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            row = self._resolve_prefix(run_id)
        return self._record(row)

    def _resolve_prefix(self, prefix: str) -> tuple:
        # The prefix is literal text: % and _ are not wildcards here.
        literal = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = (
            self._conn.execute(
                "SELECT * FROM runs WHERE id LIKE ? ESCAPE '\\' ORDER BY created DESC LIMIT 2",
                (literal + "%",),
            ).fetchall()
            if prefix
            else []
        )
        if len(rows) != 1:
            raise RunNotFound(
                f"no run {prefix!r} in {self.path}"
                if not rows
                else f"run id {prefix!r} is ambiguous",
                hint="`kiln runs` lists the runs in this store (KILN_HOME selects the store)",
            )
        return rows[0]

    @locked
    def runs(self, limit: int | None = None) -> list[RunRecord]:
        sql = "SELECT * FROM runs ORDER BY created DESC"
        params: tuple = ()
        if limit is not None:
            sql += " LIMIT ?"
            params = (limit,)
        return [self._record(row) for row in self._conn.execute(sql, params).fetchall()]

    def _record(self, row: tuple) -> RunRecord:
        (
            rid,
            created,
            updated,
            status,
            model,
            dataset,
            profile,
            precision,
            config,
            result,
            error,
            pid,
            cancel,
        ) = row
        return RunRecord(
            id=rid,
            created=created,
            updated=updated,
            status=status,
            model=model,
            dataset=dataset,
            profile=profile,
            precision=precision,
            config=json.loads(config),
            result=json.loads(result) if result else None,
            error=json.loads(error) if error else None,
            pid=pid,
            cancel_requested=cancel == CANCEL,
        )

    @locked
    def set_status(
        self,
        run_id: str,
        status: str,
        *,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        pid: int | None = None,
    ) -> None:
        """Update a run's row. A run that succeeds drops any error an earlier attempt
        left (a resumed run is not both succeeded and cancelled)."""
        self._update_status(run_id, status, result=result, error=error, pid=pid)

    def _update_status(
        self,
        run_id: str,
        status: str,
        *,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        pid: int | None = None,
    ) -> None:
        sets = ["status = ?", "updated = ?"]
        params: list[Any] = [status, time.time()]
        if result is not None:
            sets.append("result = ?")
            params.append(json.dumps(result, ensure_ascii=False, default=str))
        if error is not None:
            sets.append("error = ?")
            params.append(json.dumps(error, ensure_ascii=False, default=str))
        elif status == "succeeded":
            sets.append("error = NULL")
        if pid is not None:
            sets.append("pid = ?")
            params.append(pid)
        params.append(run_id)
        self._conn.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", params)

    @locked
    def finish_run(self, run_id: str, event: RunFinished) -> int:
        """Append ``event`` and record its status, result and error in one transaction.

        A follower stops at ``RunFinished`` and reads the run's row at once: were the
        row written after the event, it could read ``running`` with no result although
        the run succeeded. Returns the event's sequence number.
        """
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            seq = self._insert_events(run_id, [event])
            self._update_status(
                run_id, event.status, result=event.result or None, error=event.error
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return seq

    @locked
    def worker_started(self, run_id: str, pid: int) -> None:
        """Record a just-spawned worker as ``starting``, unless it already said more.

        The launcher calls this after spawning; a fast worker may already have recorded
        itself ``running`` (or finished), and that must not be overwritten.
        """
        self._conn.execute(
            "UPDATE runs SET status = 'starting', pid = ?, updated = ?"
            " WHERE id = ? AND (pid IS NULL OR pid != ?)",
            (pid, time.time(), run_id, pid),
        )

    @locked
    def request_cancel(self, run_id: str) -> None:
        self._conn.execute(
            "UPDATE runs SET cancel_requested = 1, updated = ? WHERE id = ?", (time.time(), run_id)
        )

    @locked
    def clear_cancel(self, run_id: str) -> None:
        self._conn.execute("UPDATE runs SET cancel_requested = 0 WHERE id = ?", (run_id,))

    @locked
    def cancel_requested(self, run_id: str) -> bool:
        row = self._conn.execute(
            "SELECT cancel_requested FROM runs WHERE id = ?", (run_id,)
        ).fetchone()
        return bool(row and row[0] == CANCEL)

    @locked
    def request_stop_evaluation(self, run_id: str) -> None:
        """Ask a run to stop evaluating at its next shard boundary, keep the figures so far
        (with their interval for the whole split) and go on to its later stages: the app's
        key for what ``--until`` does by width. A cancel already asked for stays."""
        self._conn.execute(
            "UPDATE runs SET cancel_requested = ?, updated = ? "
            "WHERE id = ? AND cancel_requested = 0",
            (STOP_EVALUATION, time.time(), run_id),
        )

    @locked
    def stop_evaluation_requested(self, run_id: str) -> bool:
        row = self._conn.execute(
            "SELECT cancel_requested FROM runs WHERE id = ?", (run_id,)
        ).fetchone()
        return bool(row and row[0] == STOP_EVALUATION)

    @locked
    def mark_interrupted_if_dead(self, run_id: str) -> bool:
        """A run whose worker died without a last word is interrupted, not running forever."""
        rec = self.run(run_id)
        if rec.finished or rec.status == "queued" or pid_alive(rec.pid):
            return False
        self.finish_run(run_id, _interrupted_event())
        return True

    # -- events ----------------------------------------------------------------------------
    def append(self, run_id: str, event: Event) -> int:
        return self.append_many(run_id, [event])

    @locked
    def append_many(self, run_id: str, events: Iterable[Event]) -> int:
        """Append events in one short transaction; returns the last sequence number."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            seq = self._insert_events(run_id, events)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return seq

    def _insert_events(self, run_id: str, events: Iterable[Event]) -> int:
        """The rows of ``events`` (inside the caller's transaction); returns the last seq."""
        from kiln_lab.core.events import ArtifactWritten, MetricSampled

        conn = self._conn
        (seq,) = conn.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM events WHERE run_id = ?", (run_id,)
        ).fetchone()
        for event in events:
            seq += 1
            kind, payload = to_record(event)
            conn.execute(
                "INSERT INTO events (run_id, seq, ts, kind, stage, payload)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, seq, event.ts, kind, event.stage, payload),
            )
            if isinstance(event, MetricSampled):
                conn.executemany(
                    "INSERT INTO metrics (run_id, seq, ts, stage, grp, name, value)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (run_id, seq, event.ts, event.stage_name, event.group, k, float(v))
                        for k, v in event.values.items()
                        if _is_number(v)
                    ],
                )
            elif isinstance(event, ArtifactWritten):
                # One row per artifact: a resumed run rewrites the files of the
                # stages it runs again, and the latest write is the one on disk.
                conn.execute(
                    "DELETE FROM artifacts WHERE run_id = ? AND name = ? AND path = ?",
                    (run_id, event.artifact, event.path),
                )
                conn.execute(
                    "INSERT INTO artifacts (run_id, stage, name, path, sha256, size, meta, ts)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run_id,
                        event.stage_name,
                        event.artifact,
                        event.path,
                        event.sha256,
                        event.size,
                        json.dumps(event.meta, default=str),
                        event.ts,
                    ),
                )
        conn.execute("UPDATE runs SET updated = ? WHERE id = ?", (time.time(), run_id))
        return seq

    @locked
    def last_seq(self, run_id: str) -> int:
        """The sequence number of the run's latest event (0 before any)."""
        (seq,) = self._conn.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM events WHERE run_id = ?", (run_id,)
        ).fetchone()
        return int(seq)

    @locked
    def attempt_start(self, run_id: str) -> int:
        """The seq after which the run's latest attempt begins (0 for a first attempt).

        A resumed run holds the ``RunFinished`` (interrupted, failed, cancelled) of each
        earlier attempt; a follower tails from here so that it stops at the latest
        attempt's end, not at an earlier one's.
        """
        finishes = [
            seq
            for (seq,) in self._conn.execute(
                "SELECT seq FROM events WHERE run_id = ? AND kind = ? ORDER BY seq DESC LIMIT 2",
                (run_id, RunFinished.kind),
            ).fetchall()
        ]
        if not finishes:
            return 0
        if finishes[0] == self.last_seq(run_id):  # finished: its attempt began after the one before
            return finishes[1] if len(finishes) > 1 else 0
        return finishes[0]

    @locked
    def events(self, run_id: str, *, after: int = 0, limit: int | None = None) -> list[StoredEvent]:
        sql = "SELECT seq, kind, payload FROM events WHERE run_id = ? AND seq > ? ORDER BY seq"
        params: tuple = (run_id, after)
        if limit is not None:
            sql += " LIMIT ?"
            params = (run_id, after, limit)
        return [
            StoredEvent(seq, from_record(kind, payload))
            for seq, kind, payload in self._conn.execute(sql, params).fetchall()
        ]

    @locked
    def metric_series(self, run_id: str, group: str, name: str) -> list[tuple[float, float]]:
        rows = self._conn.execute(
            "SELECT ts, value FROM metrics WHERE run_id = ? AND grp = ? AND name = ? ORDER BY seq",
            (run_id, group, name),
        ).fetchall()
        return [(ts, value) for ts, value in rows]

    @locked
    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._conn.execute(
            "SELECT stage, name, path, sha256, size, meta FROM artifacts WHERE run_id = ?",
            (run_id,),
        ).fetchall()
        return [
            {"stage": s, "name": n, "path": p, "sha256": h, "size": z, "meta": json.loads(m)}
            for s, n, p, h, z, m in rows
        ]

    # -- checkpoints (resumable evaluation) ------------------------------------------------
    @locked
    def save_checkpoints(self, run_id: str, items: dict[str, Any]) -> None:
        """Several checkpoint entries in one short transaction."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT INTO checkpoints (run_id, key, payload) VALUES (?, ?, ?)"
                " ON CONFLICT(run_id, key) DO UPDATE SET payload = excluded.payload",
                [(run_id, k, json.dumps(v, ensure_ascii=False)) for k, v in items.items()],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @locked
    def load_checkpoints(self, run_id: str, prefix: str) -> dict[str, Any]:
        rows = self._conn.execute(
            "SELECT key, payload FROM checkpoints WHERE run_id = ? AND key LIKE ?",
            (run_id, prefix.replace("%", "") + "%"),
        ).fetchall()
        return {key: json.loads(payload) for key, payload in rows}

    def tail(self, run_id: str, *, after: int = 0, poll_s: float = 0.1) -> Iterator[StoredEvent]:
        """Yield a run's events as they arrive until it finishes (or its worker dies)."""
        from kiln_lab.core.events import RunFinished

        while True:
            batch = self.events(run_id, after=after, limit=500)
            for stored in batch:
                after = stored.seq
                yield stored
                if isinstance(stored.event, RunFinished):
                    return
            if not batch:
                if self.mark_interrupted_if_dead(run_id):
                    continue
                if self.run(run_id).finished and not self.events(run_id, after=after):
                    return
                time.sleep(poll_s)


def _is_number(value: Any) -> bool:
    """A value the metrics table can hold: a finite int or float (not a bool).

    NaN (a latency quantile with nothing timed, as in a resumed evaluation with no
    batch left) would reach SQLite as NULL and fail the table's NOT NULL constraint;
    the event itself still carries it.
    """
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _interrupted_event() -> Event:
    from kiln_lab.core.events import RunFinished

    return RunFinished(
        status="interrupted",
        error={
            "kind": "Interrupted",
            "title": "Run interrupted",
            "message": "the worker process ended without finishing the run",
            "hint": "`kiln resume RUN_ID` continues from the stored progress",
        },
    )
