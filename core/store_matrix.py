"""The run store's matrix tables: which runs make up one ``kiln matrix``, and why a cell
has no run.

A matrix is a set of cells (model x profile x precision x dataset x padding); each cell
that can run is an ordinary run in the ``runs`` table, and ``matrix_cells`` ties it to
its matrix with where it ran (host, Ray node) and how many attempts it took. A cell
that cannot run keeps its reason instead of a run. These tables came with schema
version 2 (:data:`MATRIX_SCHEMA`); a version-1 store gains them, empty, when it is
first opened by a Kiln that knows them, and keeps every run it held.

Kept apart from :mod:`kiln_lab.core.store` so that module stays about runs; the methods
here are mixed into :class:`~kiln_lab.core.store.RunStore` and use its connection and
lock.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln_lab.core.errors import MatrixNotFound
from kiln_lab.core.store_open import locked

MATRIX_SCHEMA = """
CREATE TABLE IF NOT EXISTS matrices (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    spec TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    cluster TEXT
);
CREATE INDEX IF NOT EXISTS matrices_spec ON matrices(spec_hash, created);
CREATE TABLE IF NOT EXISTS matrix_cells (
    matrix_id TEXT NOT NULL REFERENCES matrices(id),
    position INTEGER NOT NULL,
    cell TEXT NOT NULL,
    config TEXT,
    run_id TEXT REFERENCES runs(id),
    reason TEXT,
    host TEXT,
    node_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (matrix_id, position)
);
CREATE INDEX IF NOT EXISTS matrix_cells_run ON matrix_cells(run_id);
"""
"""Added in schema version 2 (every statement is IF NOT EXISTS: applying it is a no-op on
a store that already has the tables)."""

CELL_FIELDS = ("config", "run_id", "reason", "host", "node_id", "attempts")
"""The columns of a cell that change after it is planned."""


@dataclass(frozen=True)
class MatrixRecord:
    """One matrix: what was asked (``spec``), its fingerprint, and where it ran last."""

    id: str
    created: float
    updated: float
    spec: dict[str, Any]
    spec_hash: str
    cluster: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created": self.created,
            "updated": self.updated,
            "spec": self.spec,
            "spec_hash": self.spec_hash,
            "cluster": self.cluster,
        }


@dataclass(frozen=True)
class CellRecord:
    """One cell of a matrix: its coordinates, and either its run or why it has none."""

    matrix_id: str
    position: int
    cell: dict[str, Any]
    """model, profile, precision, dataset, padding."""
    config: dict[str, Any] | None
    run_id: str | None
    reason: str | None
    """Why the cell cannot run (then it has no run)."""
    host: str | None
    """The host that ran it last (a cluster cell: the Ray node's host name and address)."""
    node_id: str | None
    attempts: int

    @property
    def label(self) -> str:
        cell = self.cell
        parts = [cell.get("model"), cell.get("profile"), cell.get("precision")]
        if cell.get("dataset"):
            parts.append(cell["dataset"])
        if cell.get("padding") not in (None, "bucket"):
            parts.append(f"padding {cell['padding']}")
        return " · ".join(str(p) for p in parts)


def new_matrix_id() -> str:
    """``mx-20261205-201500-3fa2``: sortable by time, and never mistaken for a run id."""
    return "mx-" + time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


class MatrixTables:
    """The matrix methods of :class:`~kiln_lab.core.store.RunStore` (one short transaction
    each, like the run methods)."""

    path: Path
    readonly_reason: str | None
    _lock: threading.RLock
    _conn: sqlite3.Connection

    @locked
    def create_matrix(
        self,
        spec: dict[str, Any],
        spec_hash: str,
        cells: Sequence[tuple[dict[str, Any], dict[str, Any] | None, str | None]],
        *,
        cluster: str | None = None,
    ) -> str:
        """Record a matrix and its planned cells ``(cell, config, reason)`` in one go."""
        matrix_id = new_matrix_id()
        now = time.time()
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "INSERT INTO matrices (id, created, updated, spec, spec_hash, cluster)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (matrix_id, now, now, json.dumps(spec, ensure_ascii=False), spec_hash, cluster),
            )
            conn.executemany(
                "INSERT INTO matrix_cells (matrix_id, position, cell, config, reason)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        matrix_id,
                        position,
                        json.dumps(cell, ensure_ascii=False),
                        json.dumps(config, ensure_ascii=False) if config is not None else None,
                        reason,
                    )
                    for position, (cell, config, reason) in enumerate(cells)
                ],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return matrix_id

    @locked
    def matrix(self, matrix_id: str) -> MatrixRecord:
        """A matrix by id or unambiguous prefix."""
        row = self._conn.execute("SELECT * FROM matrices WHERE id = ?", (matrix_id,)).fetchone()
        if row is None:
            literal = matrix_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            rows = self._conn.execute(
                "SELECT * FROM matrices WHERE id LIKE ? ESCAPE '\\' ORDER BY created DESC LIMIT 2",
                (literal + "%",),
            ).fetchall()
            if len(rows) != 1 or not matrix_id:
                raise MatrixNotFound(
                    f"no matrix {matrix_id!r} in {self.path}"
                    if not rows
                    else f"matrix id {matrix_id!r} is ambiguous",
                    hint="`kiln matrix list` lists the matrices in this store",
                )
            row = rows[0]
        return _matrix_record(row)

    @locked
    def matrices(self, limit: int | None = None) -> list[MatrixRecord]:
        sql = "SELECT * FROM matrices ORDER BY created DESC"
        params: tuple = ()
        if limit is not None:
            sql += " LIMIT ?"
            params = (limit,)
        return [_matrix_record(row) for row in self._conn.execute(sql, params).fetchall()]

    @locked
    def matrices_with_spec(self, spec_hash: str) -> list[MatrixRecord]:
        """Matrices asked with the same spec, newest first (to resume one)."""
        rows = self._conn.execute(
            "SELECT * FROM matrices WHERE spec_hash = ? ORDER BY created DESC", (spec_hash,)
        ).fetchall()
        return [_matrix_record(row) for row in rows]

    @locked
    def set_matrix_cluster(self, matrix_id: str, cluster: str | None) -> None:
        self._conn.execute(
            "UPDATE matrices SET cluster = ?, updated = ? WHERE id = ?",
            (cluster, time.time(), matrix_id),
        )

    @locked
    def matrix_cells(self, matrix_id: str) -> list[CellRecord]:
        rows = self._conn.execute(
            "SELECT matrix_id, position, cell, config, run_id, reason, host, node_id, attempts"
            " FROM matrix_cells WHERE matrix_id = ? ORDER BY position",
            (matrix_id,),
        ).fetchall()
        return [_cell_record(row) for row in rows]

    @locked
    def update_cell(self, matrix_id: str, position: int, **fields: Any) -> None:
        """Set some of :data:`CELL_FIELDS` of one cell (``None`` clears a column)."""
        unknown = set(fields) - set(CELL_FIELDS)
        if unknown:
            raise ValueError(f"not a cell column: {', '.join(sorted(unknown))}")
        if not fields:
            return
        values = [
            json.dumps(v, ensure_ascii=False) if k == "config" and v is not None else v
            for k, v in fields.items()
        ]
        sets = ", ".join(f"{name} = ?" for name in fields)
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                f"UPDATE matrix_cells SET {sets} WHERE matrix_id = ? AND position = ?",  # noqa: S608 - names from CELL_FIELDS
                (*values, matrix_id, position),
            )
            conn.execute("UPDATE matrices SET updated = ? WHERE id = ?", (time.time(), matrix_id))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @locked
    def matrix_of_run(self, run_id: str) -> CellRecord | None:
        """The matrix cell a run belongs to, if it was started by a matrix."""
        row = self._conn.execute(
            "SELECT matrix_id, position, cell, config, run_id, reason, host, node_id, attempts"
            " FROM matrix_cells WHERE run_id = ?",
            (run_id,),
        ).fetchone()
        return _cell_record(row) if row else None


def _matrix_record(row: tuple) -> MatrixRecord:
    mid, created, updated, spec, spec_hash, cluster = row
    return MatrixRecord(mid, created, updated, json.loads(spec), spec_hash, cluster)


def _cell_record(row: tuple) -> CellRecord:
    matrix_id, position, cell, config, run_id, reason, host, node_id, attempts = row
    return CellRecord(
        matrix_id=matrix_id,
        position=position,
        cell=json.loads(cell),
        config=json.loads(config) if config else None,
        run_id=run_id,
        reason=reason,
        host=host,
        node_id=node_id,
        attempts=int(attempts or 0),
    )
