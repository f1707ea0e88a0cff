"""The Matrix screen: a matrix's cells from the store, reached from the command palette."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable

from kiln_lab.core.store import RunStore
from kiln_lab.tui.app import KilnApp
from kiln_lab.tui.screens.matrix import MatrixScreen
from kiln_lab.tui.screens.run_detail import RunScreen


def _matrix(store: RunStore) -> tuple[str, str]:
    """Two cells that ran (fp32 and a faster int8 within budget) and one that could not."""
    cells = [
        ({"model": "m", "profile": "ort", "precision": "fp32"}, {}, None),
        ({"model": "m", "profile": "ort", "precision": "int8"}, {}, None),
        ({"model": "m", "profile": "ov", "precision": "int8"}, None, "ov does not offer int8"),
    ]
    matrix_id = store.create_matrix({"accuracy_budget": 1.0}, "h", cells)
    fp32_run = ""
    for position, (precision, value, speed) in enumerate(
        (("fp32", 0.9, 100.0), ("int8", 0.897, 250.0))
    ):
        run_id = store.create_run(
            {"model": "m", "profile": "ort", "precision": precision, "dataset_label": "d:test"}
        )
        store.set_status(
            run_id,
            "succeeded",
            result={
                "dataset": "d",
                "split": "test",
                "metrics": {"accuracy": value},
                "throughput": {"samples_per_s": speed},
                "latency": {"p99_ms": 12.5},
            },
        )
        store.update_cell(matrix_id, position, run_id=run_id, host="lab-2", node_id="abcdef0123")
        fp32_run = fp32_run or run_id
    return matrix_id, fp32_run


async def test_the_matrix_screen_shows_every_cell_and_opens_a_run(kiln_home: Path, until) -> None:
    with RunStore() as store:
        matrix_id, fp32_run = _matrix(store)
    app = KilnApp(show_welcome=False)
    async with app.run_test(size=(160, 40)) as pilot:
        app.action_show_matrix()
        await until(pilot, lambda: isinstance(app.screen, MatrixScreen) and app.screen.rows)
        screen = app.screen
        assert screen.matrix_id == matrix_id
        table = screen.query_one(DataTable)
        assert table.row_count == 3
        cells = [[str(c) for c in table.get_row_at(i)] for i in range(3)]
        assert cells[1][4] == "succeeded ★" and cells[1][6] == "-0.0030"
        assert cells[0][10] == "lab-2 node abcdef01"
        assert cells[2][4] == "skipped" and cells[2][11] == "ov does not offer int8"
        await pilot.press("enter")  # the first cell: the fp32 run
        await until(pilot, lambda: isinstance(app.screen, RunScreen))
        assert app.screen.run_id == fp32_run
