"""The stage timeline: each stage waiting, running (elapsed), done (duration), skipped
(reason), failed or cancelled, one line each."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from kiln_lab.tui import format as fmt
from kiln_lab.tui.state import RunView, StageState
from kiln_lab.tui.widgets.guard import guarded

GLYPH = {
    "waiting": ("○", "dim"),
    "running": ("▶", "bold cyan"),
    "done": ("✓", "green"),
    "skipped": ("–", "dim"),
    "failed": ("✗", "bold red"),
    "cancelled": ("■", "yellow"),
}
NAME_WIDTH = 10


def stage_line(stage: StageState, now: float, width: int) -> Text:
    glyph, style = GLYPH.get(stage.status, ("?", ""))
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(f"{glyph} ", style=style)
    line.append(f"{stage.name:<{NAME_WIDTH}}", style="bold" if stage.status == "running" else "")
    if stage.status == "waiting":
        line.append("waiting", style="dim")
    elif stage.status == "running":
        line.append(f"{fmt.duration(stage.elapsed(now)):>7}", style="cyan")
        if stage.total:
            share = stage.done / stage.total if stage.done else 0.0
            room = width - len(line.plain) - 6
            if room >= 6:
                line.append(" " + fmt.bar(stage.done or 0, stage.total, min(room, 16)))
            line.append(f" {share:4.0%}")
        else:
            line.append(" running", style="cyan")
    elif stage.status == "done":
        line.append(f"{fmt.duration(stage.duration_s):>7}")
    elif stage.status == "skipped":
        line.append(f"skipped: {stage.reason}", style="dim")
    elif stage.status in ("failed", "cancelled"):
        line.append(f"{fmt.duration(stage.duration_s):>7} ", style=style)
        title = (stage.error or {}).get("title") or stage.status
        line.append(str(title), style=style)
    line.truncate(max(width, 1), overflow="ellipsis")
    return line


class StageTimeline(Static):
    """Draws the stages of the run in view; ``show`` hands it a new state."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Stages"
        self._view: RunView | None = None
        self._now = 0.0
        self._lines = 1

    def show(self, view: RunView | None, now: float) -> None:
        lines = len(view.stages) if view is not None else 1
        resized = lines != self._lines
        self._view, self._now, self._lines = view, now, lines
        self.refresh(layout=resized)

    @guarded
    def render(self) -> Text:
        width = self.content_size.width or 40
        if self._view is None:
            return Text("no run yet", style="dim")
        lines = [stage_line(s, self._now, width) for s in self._view.stages.values()]
        return Text("\n").join(lines)
