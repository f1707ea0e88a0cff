"""The run log: compile and inference output, filterable, searchable, capped in memory.

A line-API widget: it keeps at most ``cap`` lines, renders only the rows on screen,
and follows new lines only while the view is at the bottom, so scrolling up to read
a warning is never yanked away by a fast run.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

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
KEEP = object()
"""Sentinel: leave this filter as it is."""


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
        self._width = 0
        self._cache: LRUCache[tuple[int, int], Strip] = LRUCache(1024)
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
        return len(self._shown)

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
                added = True
                if entry.width + self.prefix_width > self._width:
                    self._width = entry.width + self.prefix_width
        if not added:
            return
        trimmed = self._trim()
        self.virtual_size = Size(self._width, len(self._shown))
        if at_end:
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        elif trimmed:
            self.scroll_to(
                y=max(0, self.scroll_y - trimmed), animate=False, immediate=True, force=True
            )
        self.refresh()

    def clear(self) -> None:
        self._all.clear()
        self._shown.clear()
        self._cache.clear()
        self._width = 0
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
        self._width = self._widest()
        self._cache.clear()
        self.virtual_size = Size(self._width, len(self._shown))
        self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        self._set_following(True)
        self.refresh()

    def refresh_all(self) -> None:
        """Re-render every line (the prefix layout changed)."""
        self._cache.clear()
        self._width = self._widest()
        self.virtual_size = Size(self._width, len(self._shown))
        self.refresh()

    def follow(self) -> None:
        self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        self._set_following(True)

    def _widest(self) -> int:
        return self.prefix_width + max((e.width for e in self._shown), default=0)

    def _trim(self) -> int:
        """Drop the oldest shown lines beyond the cap (amortised: in chunks)."""
        excess = len(self._shown) - self.cap
        if excess < max(64, self.cap // 8):
            return 0
        del self._shown[:excess]
        self._cache.clear()
        return excess

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

    def _line_width(self, entry: LogEntry) -> int:
        return self.prefix_width + entry.width

    def _render_entry(self, entry: LogEntry) -> Strip:
        key = (entry.seq, hash(self.search))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        prefix = self._prefix(entry)
        text = Text(prefix, style="dim", no_wrap=True, end="")
        style = LEVEL_STYLE.get(entry.level, "")
        text.append(entry.text, style=style)
        if self.search:
            _highlight(text, self.search, len(prefix))
        segments = list(text.render(self.app.console))
        strip = Strip(segments, text.cell_len)
        self._cache[key] = strip
        return strip

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.size.width
        rich_style = self.rich_style
        if index >= len(self._shown):
            return Strip.blank(width, rich_style)
        strip = self._render_entry(self._shown[index])
        strip = strip.crop_extend(scroll_x, scroll_x + width, rich_style)
        return strip.apply_offsets(scroll_x, index)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()

    def on_resize(self) -> None:
        self._cache.clear()


def _highlight(text: Text, needle: str, start: int) -> None:
    """Reverse-video every case-insensitive occurrence of ``needle`` after ``start``."""
    haystack = text.plain.lower()
    at = haystack.find(needle, start)
    while at >= 0 and needle:
        text.stylize(Style(reverse=True, bold=True), at, at + len(needle))
        at = haystack.find(needle, at + len(needle))


def level_name(rank: int) -> str:
    return LEVELS[max(0, min(rank, len(LEVELS) - 1))]
