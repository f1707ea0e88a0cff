"""Snapshots of the main screen after a finished run, compact (80x24) and wide (160x48).

The store content is fixed (``fake_runs``), the clock is frozen, the cards come from
``tests/tui/data/assets`` and cursors do not blink, so the SVGs are stable. After an
intended change of the layout, review the report and run ``pytest --snapshot-update``.
"""

from __future__ import annotations

from pathlib import Path

import fake_runs
import pytest
from textual.widgets import Input

from kiln_lab.tui.app import KilnApp

FROZEN_NOW = fake_runs.T0 + 3600.0


async def settle(pilot) -> None:
    app = pilot.app
    main = app.main_screen
    for _ in range(300):
        if app.catalogue is not None and main.view is not None and main.view.is_finished:
            break
        await pilot.pause(0.05)
    await app.workers.wait_for_complete()
    for widget in app.query(Input):
        widget.cursor_blink = False
    main.refresh_panes(force=True)
    await pilot.pause(0.3)


class TestMainScreen:
    @pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
    def test_after_a_finished_run(
        self, snap_compare, size, fixed_assets: Path, fake_store: Path
    ) -> None:
        app = KilnApp(store_path=fake_store, clock=lambda: FROZEN_NOW, show_welcome=False)
        assert snap_compare(app, terminal_size=size, run_before=settle)
