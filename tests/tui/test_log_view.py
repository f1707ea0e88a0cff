"""The log widget: capped memory, filters, and following only while at the end."""

from __future__ import annotations

from pathlib import Path

import pytest
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


LONG = (
    "evaluate: 43 of 4,471 examples were longer than 128 tokens and were truncated; the "
    "model never saw their tails, so token accuracy leaves them out -- END-OF-LINE"
)


def joined_rows(view: LogView) -> str:
    """The log as the screen shows it, rows joined with continuation indents removed."""
    from textual.geometry import Region

    width, height = view.size
    rows = [strip.text.rstrip() for strip in view.render_lines(Region(0, 0, width, height))]
    return " ".join(" ".join(row.split()) for row in rows if row.strip())


def long_entries(seq: int = 0) -> list[LogEntry]:
    wide = "模型从未看到句子的尾部" * 6 + "尾"
    return [
        LogEntry(seq, 0.0, "evaluate", "warning", LONG, 2, len(LONG)),
        LogEntry(seq + 1, 0.0, "evaluate", "info", wide, 1, 2 * len(wide)),
    ]


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
async def test_a_long_line_is_shown_whole_in_the_app(
    size, fixed_assets: Path, fake_store: Path, until
) -> None:
    """On the main screen at both supported sizes, and in the full-width log (z)."""
    from kiln_lab.tui.app import KilnApp

    app = KilnApp(store_path=fake_store, show_welcome=False)
    async with app.run_test(size=size) as pilot:
        main = app.main_screen
        await until(pilot, lambda: main.view is not None and main.view.is_finished)
        await pilot.pause(0.3)
        view = main.log_panel.log_view
        assert view.size.width < len(LONG)  # the pane is narrower than the line
        main.log_panel.add(long_entries(10_000))
        await pilot.pause()
        # Scrolled to each long line's first row, all of it is on screen (at 80x24 the
        # log pane is 47x6: the English line takes 5 rows, the Chinese one 6).
        for back, expected in ((2, " ".join(LONG.split())), (1, "模型从未看到句子的尾部" * 6)):
            view.scroll_to(y=view._starts[-back], animate=False, immediate=True)
            await pilot.pause()
            shown = joined_rows(view)
            assert expected in (shown if back == 2 else shown.replace(" ", "")), size
        await pilot.press("z")
        await pilot.pause()
        assert main.has_class("-log-zoom") and view.size.width > size[0] - 8
        assert " ".join(LONG.split()) in joined_rows(view)
        await pilot.press("z")
        await pilot.pause()
        assert not main.has_class("-log-zoom")


async def test_search_shows_the_whole_matching_line() -> None:
    app = LogApp()
    async with app.run_test(size=(40, 20)) as pilot:
        panel = app.query_one(LogPanel)
        panel.add(entries(0, 30))
        panel.add(long_entries(100))
        view = panel.log_view
        view.set_filters(search="never saw")
        await pilot.pause()
        assert view.line_count == 1 and view.row_count > 3
        assert " ".join(LONG.split()) in joined_rows(view)


def test_wrap_cuts_fit_the_width_and_lose_nothing() -> None:
    from rich.cells import cell_len

    from kiln_lab.tui.widgets.log_view import wrap_cuts

    for text in (LONG, "x" * 95, "模型" * 40 + "ab", "a b " * 30):
        for width in (1, 7, 26, 60, 200):
            cuts = wrap_cuts(text, width, cell_len(text))
            pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
            assert "".join(pieces) == text
            assert all(cell_len(p) <= max(width, 2) for p in pieces), (text, width)


async def test_a_pane_too_narrow_for_the_columns_puts_the_text_under_them() -> None:
    app = LogApp()
    async with app.run_test(size=(18, 40)) as pilot:
        panel = app.query_one(LogPanel)
        panel.add(long_entries(0)[:1])
        view = panel.log_view
        await pilot.pause()
        rows = [strip.text.rstrip() for strip in view.render_lines(view.size.region)]
        assert rows[0].strip() == "evaluate  !"  # the columns alone on the first row
        assert LONG.replace(" ", "") in joined_rows(view).replace(" ", "")
