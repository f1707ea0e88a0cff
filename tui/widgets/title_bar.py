"""One line at the top: where you are, and the run in view with its status and time."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from kiln_lab.tui import format as fmt
from kiln_lab.tui.state import RunView


def title_text(screen_title: str, view: RunView | None, now: float) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(" Kiln ", style="bold reverse")
    text.append(f" {screen_title}", style="bold")
    if view is not None:
        text.append("  ·  ", style="dim")
        text.append(view.run_id)
        text.append("  ")
        text.append(view.status, style=fmt.STATUS_STYLE.get(view.status, ""))
        config = view.config
        if config:
            profile, precision, chosen = view.build
            text.append(
                f"  {config.get('model', '')} · {'auto: ' if chosen else ''}{profile} · "
                f"{precision}",
                style="dim",
            )
        elapsed = view.elapsed(now)
        if elapsed is not None:
            text.append(f"  {fmt.clock(elapsed)}", style="dim")
    return text


class TitleBar(Static):
    _shown: Text | None = None

    def show(self, screen_title: str, view: RunView | None, now: float) -> None:
        text = title_text(screen_title, view, now)
        if text != self._shown:
            self._shown = text
            self.update(text, layout=False)
