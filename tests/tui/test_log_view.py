"""The log widget: capped memory, filters, and following only while at the end."""

from __future__ import annotations

from textual.app import App, ComposeResult

from kiln_lab.tui.state import LogEntry
from kiln_lab.tui.widgets.log_panel import LogPanel
from kiln_lab.tui.widgets.log_view import LogView


def entries(start: int, count: int, level: str = "info", stage: str = "evaluate"):
    rank = {"debug": 0, "info": 1, "warning": 2, "error": 3}[level]
    for seq in range(start, start + count):
        text = f"line {seq}"
        yield LogEntry(seq, 0.0, stage, level, text, rank, len(text))


class LogApp(App[None]):
    def compose(self) -> ComposeResult:
        yield LogPanel(id="panel")


async def test_memory_is_capped() -> None:
    app = LogApp()
    async with app.run_test(size=(80, 20)) as pilot:
        view = app.query_one(LogView)
        view.cap = 1_000
        view._all = type(view._all)(maxlen=1_000)
        for start in range(0, 20_000, 500):
            view.add(entries(start, 500))
        await pilot.pause()
        assert view.total == 1_000
        assert view.line_count <= 1_000 + 1_000 // 8


async def test_follows_only_while_at_the_end() -> None:
    app = LogApp()
    async with app.run_test(size=(80, 20)) as pilot:
        view = app.query_one(LogView)
        view.add(entries(0, 200))
        await pilot.pause()
        assert view.scroll_y == view.max_scroll_y > 0 and view.following
        view.scroll_to(y=10, animate=False, immediate=True)
        await pilot.pause()
        assert not view.following
        view.add(entries(200, 50))
        await pilot.pause()
        assert view.scroll_y == 10  # reading older lines is not interrupted
        view.follow()
        view.add(entries(250, 50))
        await pilot.pause()
        assert view.scroll_y == view.max_scroll_y and view.following


async def test_filters_by_stage_level_and_text() -> None:
    app = LogApp()
    async with app.run_test(size=(80, 20)) as pilot:
        panel = app.query_one(LogPanel)
        panel.add(entries(0, 10, stage="export"))
        panel.add(entries(10, 5, level="warning"))
        panel.add(entries(15, 1, level="debug"))
        view = panel.log_view
        assert view.line_count == 15  # debug hidden by default (info and above)
        panel.set_level("warning")
        assert view.line_count == 5
        panel.set_level("debug")
        panel.set_stage("export")
        assert view.line_count == 10
        panel.set_stage(None)
        view.set_filters(search="LINE 1")
        assert view.line_count == 7  # 1, 10..15 (case-insensitive)
        await pilot.pause()
