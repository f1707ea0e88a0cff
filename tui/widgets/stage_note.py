"""One line on what the run is doing now and why; the run's outcome once it ends."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from kiln_lab.core.result import AccuracyMetrics, RunResult
from kiln_lab.tui import format as fmt
from kiln_lab.tui.state import RunView

WHY = {
    "resolve": "a typo or a missing toolchain fails here in a second, not after an hour",
    "load": "the fp32 model is the reference every precision is measured against",
    "export": "a portable graph lets the runtime optimise it with no Python in the loop",
    "optimize": "fused attention and layer-norm kernels do the same maths faster",
    "quantize": "lower precision trades a little accuracy for speed; calibration sets ranges",
    "compile": "this session is what a lab would deploy on the target",
    "verify": "logits that drift here will cost accuracy later; this catches it cheaply",
    "evaluate": "task accuracy decides whether the build is usable, not the logits alone",
    "benchmark": "samples/s and latency at fixed shapes are what vendor tables report",
    "report": "everything is stored, so runs can be compared later (h: history)",
}
"""The first-run guidance: why each stage exists, in the operator's words."""

IDLE = "No run in view. Pick a model, profile and precision, then press r to start a run."


def outcome(view: RunView) -> Text:
    """The one-line verdict of a finished run."""
    text = Text(no_wrap=False)
    elapsed = fmt.duration(view.elapsed(view.finished or 0.0)) if view.started else ""
    if view.status == "succeeded":
        text.append("✓ run succeeded", style="bold green")
        if elapsed:
            text.append(f" in {elapsed}")
        result = view.result or RunResult()
        metrics = result.metrics
        if metrics is None or not metrics.to_dict():
            metrics = AccuracyMetrics.from_dict(view.accuracy or {})
        headline = metrics.headline()
        if headline is not None:
            name, value = headline
            label = "entity F1" if name == "entity_f1" else "accuracy"
            text.append(f" · {label} {fmt.metric(value)}")
        elif view.perf_only:
            text.append(" · performance-only: no accuracy")
        speed = result.throughput.samples_per_s if result.throughput else None
        if not speed and view.throughput:
            speed = view.throughput.get("samples_per_s")
        if speed:
            text.append(f" · {fmt.number(speed)} samples/s")
        return text
    error = view.error or {}
    style = "bold red" if view.status == "failed" else "bold yellow"
    text.append(f"{'✗' if view.status == 'failed' else '■'} run {view.status}", style=style)
    failed = next((s for s in view.stages.values() if s.status in ("failed", "cancelled")), None)
    if failed is not None:
        text.append(f" at {failed.name}")
    if error.get("title"):
        text.append(f": {error['title']}", style=style)
    if error.get("message"):
        text.append(f" — {error['message']}")
    if error.get("hint"):
        text.append(f" · fix: {error['hint']}", style="italic")
    return text


class StageNote(Static):
    """What the current stage does, and (on a first run) why it exists."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._text: Text = Text(IDLE, style="dim")
        self._shown: Text | None = None

    def show(
        self, view: RunView | None, *, first_run: bool = False, pending: str | None = None
    ) -> None:
        if pending:
            self._text = Text(pending, style="cyan")
        elif view is None:
            self._text = Text(IDLE, style="dim")
        elif view.is_finished:
            self._text = outcome(view)
        elif view.current is not None:
            stage = view.stages[view.current]
            text = Text()
            text.append(f"▶ {stage.name}: ", style="bold cyan")
            text.append(stage.description or "working…")
            if first_run and stage.name in WHY:
                text.append(f" Why: {WHY[stage.name]}.", style="italic dim")
            self._text = text
        else:
            self._text = Text("starting the worker process…", style="cyan")
        if self._text != self._shown:
            self._shown = self._text
            self.update(self._text)
