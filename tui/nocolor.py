"""``NO_COLOR``: greys only, and every piece of text readable.

Textual honours ``NO_COLOR`` by turning each colour into the grey of the same
luminance. Red text on a dark panel then becomes dark grey on dark grey. This filter
does the same conversion but lifts any text too close to its background, so what
colour used to say (a loss, a failure) stays legible: the app also never relies on
colour alone (deltas carry their sign, statuses their word or glyph).
"""

from __future__ import annotations

from functools import lru_cache

from rich.segment import Segment
from rich.style import Style
from textual.color import Color
from textual.filter import LineFilter, Monochrome

MIN_CONTRAST = 0.4
"""Least difference in brightness (0..1) between text and its background."""
ASSUMED_BACKGROUND = 0.1
"""Brightness assumed when a segment has no background (a dark terminal)."""


def _grey(level: float) -> Color:
    value = round(max(0.0, min(1.0, level)) * 255)
    return Color(value, value, value)


@lru_cache(4096)
def readable_style(style: Style) -> Style:
    foreground = Color.from_rich_color(style.color).monochrome if style.color else None
    background = Color.from_rich_color(style.bgcolor).monochrome if style.bgcolor else None
    if foreground is not None:
        base = background.brightness if background is not None else ASSUMED_BACKGROUND
        if abs(foreground.brightness - base) < MIN_CONTRAST:
            foreground = _grey(0.85 if base < 0.5 else 0.1)
    return style + Style.from_color(
        foreground.rich_color if foreground is not None else None,
        background.rich_color if background is not None else None,
    )


class ReadableMonochrome(LineFilter):
    """Monochrome, with text lifted to a readable contrast."""

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        return [
            Segment(text, readable_style(style) if style is not None else None, None)
            for text, style, _ in segments
        ]


def install(app: object) -> None:
    """Swap Textual's monochrome filter for the readable one (when ``NO_COLOR`` is set)."""
    filters = getattr(app, "_filters", None)
    if not isinstance(filters, list):
        return
    for index, line_filter in enumerate(filters):
        if isinstance(line_filter, Monochrome):
            filters[index] = ReadableMonochrome()
