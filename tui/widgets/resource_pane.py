"""The worker's CPU and memory, and the GPU's when the worker reports one."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from kiln_lab.tui import format as fmt
from kiln_lab.tui.state import RunView
from kiln_lab.tui.widgets.guard import guarded


def render_resources(view: RunView | None) -> Text:
    if view is None:
        return Text("no run in view", style="dim")
    values = view.resources or {}
    if not values:
        summary = (view.result.resources if view.result is not None else None) or {}
        if summary:
            text = Text(no_wrap=True, overflow="ellipsis")
            text.append("CPU ", style="dim")
            text.append(f"{fmt.number(summary.get('cpu_percent_mean'), 0)}% mean")
            text.append("\nRSS ", style="dim")
            text.append(f"{fmt.megabytes(summary.get('rss_peak_mb'))} peak")
            text.append("\nGPU ", style="dim")
            text.append("not reported", style="dim")
            return text
        return Text("sampled while evaluating or benchmarking", style="dim")
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append("CPU ", style="dim")
    text.append(f"{fmt.number(values.get('cpu_percent'), 0)}%")
    text.append("\nRSS ", style="dim")
    text.append(fmt.megabytes(values.get("rss_mb")))
    text.append("\nGPU ", style="dim")
    if values.get("gpu_util_percent") is not None:
        text.append(f"{fmt.number(values['gpu_util_percent'], 0)}%")
        if values.get("gpu_mem_mb") is not None:
            text.append("\nGPU mem ", style="dim")
            text.append(fmt.megabytes(values["gpu_mem_mb"]))
            if values.get("gpu_mem_total_mb"):
                text.append(f" / {fmt.megabytes(values['gpu_mem_total_mb'])}", style="dim")
    else:
        text.append("none found by NVML" if "gpu_count" in values else "not reported", "dim")
    return text


class ResourcePane(Static):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Resources"
        self._view: RunView | None = None
        self._drawn: tuple | None = None

    def show(self, view: RunView | None) -> None:
        drawn = (
            id(view),
            view and tuple(sorted((view.resources or {}).items())),
            view and view.result is not None,
        )
        if drawn == self._drawn:
            return
        self._view, self._drawn = view, drawn
        self.refresh()

    @guarded
    def render(self) -> Text:
        return render_resources(self._view)
