"""The shared shape of every screen that shows one run: timeline, log and live panes.

A thread worker tails the run store and posts batches; handlers fold them into a
:class:`~tui.state.RunView` on the UI thread; a timer repaints the panes at most
every ``REFRESH_INTERVAL_S`` inside ``batch_update()``, so however fast the worker
writes, the terminal gets a bounded number of frames.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer
from textual.worker import get_current_worker

from kiln_lab.core.result import RunResult
from kiln_lab.tui.accuracy import accuracy_table, fp32_reference, task_of
from kiln_lab.tui.messages import (
    ReferenceRunsLoaded,
    RunEventsFetched,
    RunFiguresSampled,
    RunRecordLoaded,
)
from kiln_lab.tui.state import LEVELS, REFRESH_INTERVAL_S, RunView
from kiln_lab.tui.tail import tail_run
from kiln_lab.tui.widgets.accuracy_pane import AccuracyPane
from kiln_lab.tui.widgets.log_panel import LogPanel
from kiln_lab.tui.widgets.resource_pane import ResourcePane
from kiln_lab.tui.widgets.stage_note import StageNote
from kiln_lab.tui.widgets.stage_timeline import StageTimeline
from kiln_lab.tui.widgets.throughput_pane import ThroughputPane
from kiln_lab.tui.widgets.title_bar import TitleBar

if TYPE_CHECKING:
    from kiln_lab.tui.app import KilnApp

LOG_BINDINGS = [
    Binding("s", "cycle_stage", "Log: next stage", show=False),
    Binding("l", "cycle_level", "Log: next level", show=False),
    Binding("f", "follow_log", "Log: follow the end", show=False),
]
"""Keys every run view has; listed in help (?) and the palette, not the footer."""

ZOOM_BINDING = Binding("z", "zoom_log", "Full log")
"""The log across the whole screen and back: shown in the footer of every run view."""

COMPACT_WIDTH = 120
COMPACT_HEIGHT = 34


class MonitorScreen(Screen[None]):
    """Base class: subclasses add their left column on top of the stage timeline."""

    SCREEN_TITLE = "Run"
    HELP = ""
    CSS_PATH = Path(__file__).with_name("monitor.tcss")

    BINDINGS: list[Binding] = []
    """Each screen lists its own keys, in the order the footer shows them."""

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.view: RunView | None = None
        self.live = False
        """True when the run was not finished when we attached: its end is news."""
        self.reference_runs: tuple[Any, ...] = ()
        self.pending: str | None = None
        self._ready = False
        self._attach_when_ready: str | None = None

    @property
    def kiln(self) -> KilnApp:
        return self.app  # type: ignore[return-value]

    # -- layout -----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        # Choose the layout before the first one is computed (no second styling pass).
        width, height = self.app.size
        self.set_class(width < COMPACT_WIDTH or height < COMPACT_HEIGHT, "-compact")
        yield TitleBar(id="title")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield from self.compose_left()
                yield StageTimeline(id="timeline")
                yield from self.compose_left_bottom()
            with Vertical(id="main"):
                with Vertical(id="right"):
                    yield AccuracyPane(id="accuracy")
                    with Horizontal(id="speed"):
                        yield ThroughputPane(id="throughput")
                        yield ResourcePane(id="resources")
                with Vertical(id="centre"):
                    yield StageNote(id="note")
                    yield LogPanel(id="log-panel")
        yield Footer(compact=True)

    def compose_left(self) -> ComposeResult:
        yield from ()

    def compose_left_bottom(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        # Nested children may still be mounting: finish setting up after the first refresh.
        self.call_after_refresh(self._ready_up)

    def _ready_up(self) -> None:
        self._ready = True
        self._apply_size(self.app.size.width, self.app.size.height)
        self.set_interval(REFRESH_INTERVAL_S, self.refresh_panes)
        if self._attach_when_ready is not None:
            self.attach(self._attach_when_ready)
        self.refresh_panes(force=True)
        self.when_ready()

    def when_ready(self) -> None:
        """Subclasses: the screen's widgets are all mounted."""

    def on_resize(self, event: Any) -> None:
        self._apply_size(event.size.width, event.size.height)

    def _apply_size(self, width: int, height: int) -> None:
        if not self._ready:
            return
        compact = width < COMPACT_WIDTH or height < COMPACT_HEIGHT
        if self.has_class("-compact") != compact:
            self.set_class(compact, "-compact")
        log_view = self.log_panel.log_view
        if log_view.show_time == compact:
            log_view.show_time = not compact
            log_view.refresh_all()

    @property
    def log_panel(self) -> LogPanel:
        return self.query_one(LogPanel)

    # -- following a run --------------------------------------------------------------------
    def attach(self, run_id: str) -> None:
        """Show ``run_id`` from the start of its events, live if it is still going."""
        if not self._ready:
            self._attach_when_ready = run_id
            return
        self._attach_when_ready = None
        self.view = RunView(run_id)
        self.live = False
        self.pending = None
        self.reference_runs = ()
        self.log_panel.reset()
        self._tail(run_id)
        self.refresh_panes(force=True)

    @work(thread=True, exclusive=True, group="tail", exit_on_error=False)
    def _tail(self, run_id: str) -> None:
        from kiln_lab.core.errors import KilnError
        from kiln_lab.core.store import RunStore

        worker = get_current_worker()
        try:
            store = RunStore(self.kiln.store_path)
        except KilnError as exc:
            self.app.call_from_thread(self.kiln.show_error, exc.to_dict())
            return
        try:
            references = tuple(
                r
                for r in store.runs(limit=500)
                if r.status == "succeeded" and r.precision == "fp32"
            )
            self.post_message(ReferenceRunsLoaded(run_id, references))
            tail_run(
                store,
                run_id,
                on_events=lambda events: self.post_message(RunEventsFetched(run_id, events)),
                on_figures=lambda figures: self.post_message(RunFiguresSampled(run_id, figures)),
                on_record=lambda record: self.post_message(RunRecordLoaded(record)),
                cancelled=lambda: worker.is_cancelled,
            )
        except KilnError as exc:
            self.app.call_from_thread(self.kiln.show_error, exc.to_dict())
        finally:
            store.close()

    def _mine(self, run_id: str) -> bool:
        return self.view is not None and self.view.run_id == run_id

    def on_run_record_loaded(self, message: RunRecordLoaded) -> None:
        record = message.record
        if not self._mine(record.id):
            return
        view = self.view
        assert view is not None
        first = not view.config and view.started is None
        if first and not record.finished:
            self.live = True
        view.apply_record(record.status, record.config, record.created)
        if record.finished:
            if view.result is None and record.result:
                view.result = RunResult.from_dict(record.result)
            if view.error is None and record.error:
                view.error = dict(record.error)

    def on_reference_runs_loaded(self, message: ReferenceRunsLoaded) -> None:
        if self._mine(message.run_id):
            self.reference_runs = message.records
            if self.view is not None:
                self.view.dirty = True

    def on_run_figures_sampled(self, message: RunFiguresSampled) -> None:
        view = self.view
        if view is None or not self._mine(message.run_id):
            return
        figures = message.figures
        for group, values in figures.latest.items():
            view.apply_metric(group, values)
        # apply_metric appended the latest point; use the full list of points instead.
        if figures.throughput_points:
            if "throughput" in figures.latest:
                view.history.pop()
            view.history.extend(figures.throughput_points)
        for cell in figures.benchmark_cells:
            view.add_benchmark_cell(cell)
        for stage_name, (done, total) in figures.progress.items():
            stage = view.stages.get(stage_name)
            if stage is not None:
                stage.done, stage.total = done, total

    def on_run_events_fetched(self, message: RunEventsFetched) -> None:
        view = self.view
        if view is None or not self._mine(message.run_id):
            return
        was_finished = view.is_finished
        view.apply_all(message.events)
        if view.is_finished and not was_finished and self.live:
            self.refresh_panes(force=True)
            self.run_ended(view)

    def run_ended(self, view: RunView) -> None:
        """A run we watched live just ended: say so, and show its error as a modal."""
        if view.status == "succeeded":
            self.notify(f"run {view.run_id} succeeded", title="Run finished", timeout=6)
        elif view.status == "failed" and view.error:
            self.kiln.show_error(view.error)
        else:
            self.notify(f"run {view.run_id} {view.status}", severity="warning", timeout=6)

    # -- drawing ----------------------------------------------------------------------------
    def refresh_panes(self, force: bool = False) -> None:
        if not self._ready:
            return
        view = self.view
        running = view is not None and not view.is_finished
        if not force and not running and (view is None or not view.dirty):
            return
        now = self.kiln.clock()
        try:
            with self.app.batch_update():
                self.query_one(TitleBar).show(self.SCREEN_TITLE, view, now)
                self.query_one(StageTimeline).show(view, now)
                if force or view is None or view.dirty:
                    self.query_one(StageNote).show(
                        view, first_run=self.kiln.first_run, pending=self.pending
                    )
                    if view is not None:
                        log_view = self.log_panel.log_view
                        if log_view.run_started is None and view.started is not None:
                            log_view.run_started = view.started
                            log_view.refresh_all()
                        self.log_panel.add(view.drain_log())
                    self.query_one(AccuracyPane).show(self.accuracy() if view else None)
                    self.query_one(ThroughputPane).show(view)
                    self.query_one(ResourcePane).show(view)
                    self.update_left(view)
                    if view is not None:
                        view.dirty = False
        except Exception as exc:  # noqa: BLE001 - a drawing bug must not stop the app
            self.kiln.report_bug(exc)

    def update_left(self, view: RunView | None) -> None:
        """Subclasses refresh their own left-column widgets here."""

    def accuracy(self) -> Any:
        view = self.view
        assert view is not None
        card = self.kiln.catalogue.model(view.model) if self.kiln.catalogue else None
        reference = fp32_reference(
            self.reference_runs,
            model=view.model,
            dataset=view.dataset_key(),
            examples=view.examples,
            exclude=view.run_id,
        )
        return accuracy_table(
            view,
            task=task_of(card.task) if card else None,
            reference=reference,
            card_references=card.references if card else (),
        )

    # -- actions ----------------------------------------------------------------------------
    def action_cancel_run(self) -> None:
        view = self.view
        if view is None or view.is_finished:
            self.notify("no run is going in this view", severity="warning")
            return
        self.kiln.confirm_cancel(view.run_id)

    def action_stop_evaluation(self) -> None:
        """Stop the evaluation at its next shard boundary and keep its figures, with the
        interval for the whole split (what ``--until`` does once narrow enough)."""
        view = self.view
        if view is None or view.is_finished:
            self.notify("no run is going in this view", severity="warning")
            return
        self.kiln.request_stop_evaluation(view.run_id)

    def action_search_log(self) -> None:
        self.log_panel.open_search()

    def action_cycle_stage(self) -> None:
        self.log_panel.cycle_stage()

    def action_cycle_level(self) -> None:
        self.log_panel.cycle_level()

    def action_follow_log(self) -> None:
        self.log_panel.log_view.follow()

    def action_zoom_log(self) -> None:
        """The log alone across the screen (every pane hidden), or the usual layout back."""
        zoomed = not self.has_class("-log-zoom")
        self.set_class(zoomed, "-log-zoom")
        self.log_panel.border_subtitle = "z: back to the panes" if zoomed else ""
        self.log_panel.log_view.focus()

    def set_log_stage(self, stage: str | None) -> None:
        self.log_panel.set_stage(stage)

    def set_log_level(self, level: str) -> None:
        if level in LEVELS:
            self.log_panel.set_level(level)

    def action_back(self) -> None:
        if self.log_panel.close_search():
            return
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
