"""The run log: compile and inference output, filterable, searchable, capped in memory.

A line-API widget: it keeps at most ``cap`` lines, renders only the rows on screen,
and follows new lines only while the view is at the bottom, so scrolling up to read
a warning is never yanked away by a fast run.

Every line is shown whole: a line wider than the pane wraps onto rows indented under
its own text, so the time, stage and level columns stay clear (a 26-cell log column
used to show "0:30 evaluate ! 43 of" and cut the rest, search results included).
Each shown line's first row is kept in a running list, so drawing a row is a bisect;
only a resize, a filter or a trim counts the rows again.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Iterable

from rich.cells import get_character_cell_size
from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from kiln_lab.tui import format as fmt
from kiln_lab.tui.state import LEVELS, LOG_CAP, LogEntry

LEVEL_STYLE = {"debug": "dim", "info": "", "warning": "yellow", "error": "bold red"}
LEVEL_MARK = {"debug": "·", "info": " ", "warning": "!", "error": "✗"}
STAGE_WIDTH = 9
TIME_WIDTH = 5
MIN_TEXT_WIDTH = 8
"""Below this many cells for the text, wrap under the prefix instead of beside it."""
KEEP = object()
"""Sentinel: leave this filter as it is."""


def wrap_cuts(text: str, width: int, cells: int) -> list[int]:
    """Where ``text`` (``cells`` wide) breaks into rows of at most ``width`` cells.

    Breaks after a space in a row's last third when there is one, else mid-word; a line
    with wide (CJK, two-cell) characters breaks between characters, never inside one.
    Returns character offsets.
    """
    if cells <= width or width < 1:
        return []
    cuts: list[int] = []
    if cells == len(text):  # every character one cell: plain string arithmetic
        start = 0
        while len(text) - start > width:
            end = start + width
            space = text.rfind(" ", start + (2 * width) // 3, end)
            end = space + 1 if space >= 0 else end
            cuts.append(end)
            start = end
        return cuts
    used, start = 0, 0
    for index, char in enumerate(text):
        size = get_character_cell_size(char)
        if used + size > width and index > start:
            cuts.append(index)
            start, used = index, 0
        used += size
    return cuts


class LogView(ScrollView, can_focus=True):
    """Lines of one run's log; ``add`` appends, the filters choose what shows."""

    DEFAULT_CSS = """
    LogView { background: $surface; }
    """

    class Followed(Message):
        """The view started or stopped following new lines (it reached or left the end)."""

        def __init__(self, following: bool) -> None:
            super().__init__()
            self.following = following

    def __init__(self, *, cap: int = LOG_CAP, id: str | None = None) -> None:
        super().__init__(id=id)
        self.cap = cap
        self._all: deque[LogEntry] = deque(maxlen=cap)
        self._shown: list[LogEntry] = []
        self._starts: list[int] = []
        """The first row of each shown line."""
        self._rows = 0
        self._text_width = 0
        """Cells a line's text may use on one row: the pane less the prefix."""
        self._cache: LRUCache[tuple[int, int, int], list[Strip]] = LRUCache(1024)
        self.stage: str | None = None
        self.min_level = 1
        self.search = ""
        self.run_started: float | None = None
        self.show_stage = True
        self.show_time = True
        self._following = True

    # -- content ----------------------------------------------------------------------------
    @property
    def line_count(self) -> int:
        """Log lines shown (after the filters), however many rows they wrap onto."""
        return len(self._shown)

    @property
    def row_count(self) -> int:
        """Screen rows the shown lines take."""
        return self._rows

    @property
    def total(self) -> int:
        return len(self._all)

    @property
    def following(self) -> bool:
        return self._following

    def matches(self, entry: LogEntry) -> bool:
        if entry.severity < self.min_level:
            return False
        if self.stage is not None and entry.stage != self.stage:
            return False
        return not self.search or self.search in entry.text.lower()

    def add(self, entries: Iterable[LogEntry]) -> None:
        at_end = self._following
        added = False
        for entry in entries:
            self._all.append(entry)
            if self.matches(entry):
                self._shown.append(entry)
                self._starts.append(self._rows)
                self._rows += self._row_count(entry)
                added = True
        if not added:
            return
        trimmed_rows = self._trim()
        self._set_virtual_size()
        if at_end:
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        elif trimmed_rows:
            self.scroll_to(
                y=max(0, self.scroll_y - trimmed_rows), animate=False, immediate=True, force=True
            )
        self.refresh()

    def clear(self) -> None:
        self._all.clear()
        self._shown.clear()
        self._cache.clear()
        self._starts, self._rows = [], 0
        self.virtual_size = Size(0, 0)
        self.scroll_to(0, 0, animate=False, immediate=True)
        self.refresh()

    def set_filters(
        self,
        *,
        stage: str | None | object = KEEP,
        min_level: int | None = None,
        search: str | None = None,
    ) -> None:
        """Change any of the filters (``stage=None`` means every stage) and re-filter."""
        if stage is not KEEP:
            self.stage = stage  # type: ignore[assignment]
        if min_level is not None:
            self.min_level = min_level
        if search is not None:
            self.search = search.lower()
        self._shown = [e for e in self._all if self.matches(e)]
        self._cache.clear()
        self._recount()
        self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        self._set_following(True)
        self.refresh()

    def refresh_all(self) -> None:
        """Re-render every line (the prefix layout or the width changed)."""
        self._cache.clear()
        self._recount()
        self.refresh()

    def follow(self) -> None:
        self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        self._set_following(True)

    # -- rows -------------------------------------------------------------------------------
    def _available_width(self) -> int:
        """Cells for prefix and text on one row.

        The vertical scrollbar's cells are always kept free, so the scrollbar coming and
        going as lines arrive never re-wraps the log.
        """
        return max(1, self.size.width - self.styles.scrollbar_size_vertical)

    @property
    def _beside(self) -> bool:
        """Whether the text starts beside the prefix (else on the rows under it)."""
        return self._text_width < self._available_width()

    def _update_text_width(self) -> None:
        available = self._available_width()
        beside = available - self.prefix_width
        self._text_width = beside if beside >= MIN_TEXT_WIDTH else available

    def _row_count(self, entry: LogEntry) -> int:
        if self._text_width <= 0:
            self._update_text_width()
        rows = 1 + len(wrap_cuts(entry.text, self._text_width, entry.width))
        return rows if self._beside else rows + 1

    def _recount(self) -> None:
        """Count every shown line's rows again (after a resize or a filter change)."""
        self._update_text_width()
        starts, rows = [], 0
        extra = 0 if self._beside else 1
        for entry in self._shown:
            starts.append(rows)
            rows += 1 + extra + len(wrap_cuts(entry.text, self._text_width, entry.width))
        self._starts, self._rows = starts, rows
        self._set_virtual_size()

    def _set_virtual_size(self) -> None:
        self.virtual_size = Size(self._available_width(), self._rows)

    def _trim(self) -> int:
        """Drop the oldest shown lines beyond the cap (in chunks); the rows dropped."""
        excess = len(self._shown) - self.cap
        if excess < max(64, self.cap // 8):
            return 0
        dropped_rows = self._starts[excess]
        del self._shown[:excess]
        self._starts = [start - dropped_rows for start in self._starts[excess:]]
        self._cache.clear()
        return dropped_rows

    def _at_end(self) -> bool:
        return self.max_scroll_y == 0 or self.scroll_y >= self.max_scroll_y - 1

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self._set_following(self._at_end())

    def _set_following(self, following: bool) -> None:
        if following != self._following:
            self._following = following
            self.post_message(self.Followed(following))

    # -- rendering --------------------------------------------------------------------------
    def _prefix(self, entry: LogEntry) -> str:
        when = ""
        if self.show_time and self.run_started is not None:
            when = f"{fmt.clock(entry.ts - self.run_started):>{TIME_WIDTH}} "
        stage = ""
        if self.show_stage:
            stage = f"{(entry.stage or '-')[:STAGE_WIDTH]:<{STAGE_WIDTH}} "
        return f"{when}{stage}{LEVEL_MARK.get(entry.level, ' ')} "

    @property
    def prefix_width(self) -> int:
        """Every line's prefix has the same width (time, stage and level columns)."""
        when = TIME_WIDTH + 1 if self.show_time and self.run_started is not None else 0
        return when + (STAGE_WIDTH + 1 if self.show_stage else 0) + 2

    def _render_entry(self, entry: LogEntry) -> list[Strip]:
        """The line's rows: the prefix and its text, then the text's continuation rows."""
        key = (entry.seq, hash(self.search), self._text_width)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        prefix = self._prefix(entry)
        body = Text(entry.text, style=LEVEL_STYLE.get(entry.level, ""), no_wrap=True, end="")
        if self.search:
            _highlight(body, self.search, 0)
        pieces = body.divide(wrap_cuts(entry.text, self._text_width, entry.width))
        beside = self._beside
        indent = " " * len(prefix) if beside else ""
        strips = []
        for number, piece in enumerate(pieces):
            row = Text(prefix if number == 0 else indent, style="dim", no_wrap=True, end="")
            if number == 0 and not beside:
                strips.append(self._strip(row))
                row = Text(no_wrap=True, end="")
            row.append_text(piece)
            strips.append(self._strip(row))
        self._cache[key] = strips
        return strips

    def _strip(self, text: Text) -> Strip:
        return Strip(list(text.render(self.app.console)), text.cell_len)

    def render_line(self, y: int) -> Strip:
        row = self.scroll_offset.y + y
        width = self.size.width
        rich_style = self.rich_style
        if row >= self._rows or not self._shown:
            return Strip.blank(width, rich_style)
        index = bisect_right(self._starts, row) - 1
        strips = self._render_entry(self._shown[index])
        part = row - self._starts[index]
        strip = strips[part] if part < len(strips) else Strip.blank(width, rich_style)
        return strip.crop_extend(0, width, rich_style).apply_offsets(0, row)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()

    def on_resize(self) -> None:
        self._cache.clear()
        before = self._text_width
        self._update_text_width()
        if self._text_width != before:
            following = self._following
            self._recount()
            if following:
                self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        self.refresh()


def _highlight(text: Text, needle: str, start: int) -> None:
    """Reverse-video every case-insensitive occurrence of ``needle`` after ``start``."""
    haystack = text.plain.lower()
    at = haystack.find(needle, start)
    while at >= 0 and needle:
        text.stylize(Style(reverse=True, bold=True), at, at + len(needle))
        at = haystack.find(needle, at + len(needle))


def level_name(rank: int) -> str:
    return LEVELS[max(0, min(rank, len(LEVELS) - 1))]
