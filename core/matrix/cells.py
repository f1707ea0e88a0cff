"""Where each cell of a matrix stands, and which cells a (re)started driver must run.

Shared by the local and the cluster drivers: a matrix is started once and resumed any
number of times (``kiln matrix resume ID``, or the same command again). Finished cells
are kept; a cell whose run was interrupted or cancelled resumes as runs do; a cell never
started is started; a cell that could not run is checked again (a profile installed
since, a host that joined).
"""

from __future__ import annotations

from typing import Any

from kiln_lab.core.matrix.plan import Cell as PlanCell
from kiln_lab.core.matrix.plan import MatrixSpec, check_cell, plan
from kiln_lab.core.store_matrix import CellRecord

SKIPPED = "skipped"
PENDING = "pending"
DONE = frozenset({"succeeded", "failed", SKIPPED})
"""A cell in one of these is not run again by a resume (a failed run is a result too: its
error is in the table; ``kiln resume RUN`` retries one by hand)."""
RESUMABLE = frozenset({"interrupted", "cancelled"})


def cell_status(store: Any, cell: CellRecord) -> str:
    """``skipped``, ``pending`` (no run yet), or the status of the cell's run."""
    if cell.run_id is None:
        return SKIPPED if cell.reason else PENDING
    if not store.readonly:
        store.mark_interrupted_if_dead(cell.run_id)
    return str(store.run(cell.run_id).status)


def complete(store: Any, matrix_id: str) -> bool:
    """Every cell succeeded, failed or could not run."""
    return all(cell_status(store, cell) in DONE for cell in store.matrix_cells(matrix_id))


def open_matrix(
    store: Any, spec: MatrixSpec, *, cluster: str | None, new: bool = False
) -> tuple[str, bool]:
    """The matrix to run for ``spec``: the newest unfinished one asked the same way
    (``resumed`` True), else a new one. Returns ``(matrix_id, resumed)``."""
    fingerprint = spec.fingerprint()
    if not new:
        for record in store.matrices_with_spec(fingerprint):
            if not complete(store, record.id):
                prepare_resume(store, record.id, cluster=cluster)
                return record.id, True
    planned = plan(spec, on_this_host=cluster is None)
    cells = [
        (p.cell.to_dict(), p.config.to_dict() if p.config else None, p.reason) for p in planned
    ]
    return store.create_matrix(spec.to_dict(), fingerprint, cells, cluster=cluster), False


def prepare_resume(store: Any, matrix_id: str, *, cluster: str | None) -> None:
    """Check the cells that could not run again, and note where the matrix now runs."""
    spec = MatrixSpec.from_dict(store.matrix(matrix_id).spec)
    for cell in store.matrix_cells(matrix_id):
        if cell.run_id is None and cell.reason:
            checked = check_cell(PlanCell(**cell.cell), spec, on_this_host=cluster is None)
            store.update_cell(
                matrix_id,
                cell.position,
                config=checked.config.to_dict() if checked.config else None,
                reason=checked.reason,
            )
    store.set_matrix_cluster(matrix_id, cluster)


def cells_to_run(store: Any, matrix_id: str) -> list[CellRecord]:
    """The cells a driver must still see through, in table order."""
    return [cell for cell in store.matrix_cells(matrix_id) if cell_status(store, cell) not in DONE]


def summary(store: Any, matrix_id: str) -> dict[str, int]:
    """How many cells are in each status (for progress lines)."""
    counts: dict[str, int] = {}
    for cell in store.matrix_cells(matrix_id):
        status = cell_status(store, cell)
        counts[status] = counts.get(status, 0) + 1
    return counts
