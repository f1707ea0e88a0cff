"""The main screen: choose a run on the left, watch it in the centre and on the right."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding

from kiln_lab.tui.catalogue import DEMO_MODEL, DEMO_PRECISION, DEMO_PROFILE, Catalogue, Selection
from kiln_lab.tui.catalogue import default_selection as pick_default
from kiln_lab.tui.messages import RunLaunched, RunLaunchFailed, SelectionChanged
from kiln_lab.tui.screens.monitor import LOG_BINDINGS, ZOOM_BINDING, MonitorScreen
from kiln_lab.tui.state import RunView
from kiln_lab.tui.widgets.run_info import RunInfo
from kiln_lab.tui.widgets.setup_panel import DataFile, SetupPanel, value_of

HELP = """
The main screen. On the left, choose what to run: a model card (its family and task,
and whether its weights are here or only a performance-only run is possible), a
dataset (the built-in sets of the model's task, or "your file…": a file picker that
finds the file's format and says whether it fits the model), a hardware profile
(unavailable ones say why), a precision the profile offers, the batch size, the
sequence length and how many test examples to score (enter: type any count, or all).

Press r to start. The run executes in its own worker process and writes every event
to the run store; this screen tails the store. The stage timeline shows each stage
waiting, running with its elapsed time, done with its duration, skipped with the
reason, or failed. The log streams compile and inference output: s and l filter it by
stage and level, / searches it, and it follows new lines only while you are at the end.
Long lines wrap, so every line is shown whole; z shows the log alone across the whole
screen, and z again brings the panes back.

On the right: accuracy (live, beside the most recent fp32 run of the same model and
data, and the figure published on the model card, with the difference), throughput
(samples/s and its recent history, latency percentiles per batch, batch size and
padding waste) and the worker's CPU and memory.

Quitting while a run goes asks whether to leave it running (the default) or cancel
it. Reopen Kiln and the run shows live again.
"""


class MainScreen(MonitorScreen):
    SCREEN_TITLE = "Main"
    HELP = HELP

    BINDINGS = [
        Binding("r", "start_run", "Run"),
        Binding("c", "cancel_run", "Cancel"),
        Binding("e", "stop_evaluation", "Stop evaluating (keep figures)", show=False),
        Binding("slash", "search_log", "Search"),
        ZOOM_BINDING,
        Binding("h", "app.show_runs", "Runs"),
        *LOG_BINDINGS,
        Binding("w", "app.show_welcome", "Welcome screen", show=False),
        Binding("escape", "back", "Close search", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(id="main-screen")
        self.selection = Selection()
        self.catalogue: Catalogue | None = None
        self.last_config: dict[str, Any] | None = None
        self._start_when_ready: bool | None = None
        self._added_model: str | None = None
        """A card added from the app, to be chosen once the catalogue has read it."""
        """A run asked for before the catalogue was in: None, or whether it is the demo."""

    def compose_left(self) -> ComposeResult:
        yield SetupPanel(id="setup")

    def compose_left_bottom(self) -> ComposeResult:
        yield RunInfo(id="run-info")

    def when_ready(self) -> None:
        self.watch(self.app, "catalogue", self._catalogue_changed)

    def _catalogue_changed(self, catalogue: Catalogue | None) -> None:
        if catalogue is None:
            return
        first = self.catalogue is None
        self.catalogue = catalogue
        if first:
            self.selection = pick_default(catalogue, self.last_config)
        panel = self.query_one(SetupPanel)
        # The panel holds the operator's latest pick; this screen's copy follows it by a
        # message, so a catalogue arriving in between (the probe answers twice) must not
        # put the older copy back.
        panel.load(catalogue, self.selection if first else panel.selection)
        self.selection = panel.selection
        added = self._added_model
        if added is not None and catalogue.model(added) is not None:
            self._added_model = None
            self.query_one(SetupPanel).set_value("model", added)
        if self._start_when_ready is not None:
            demo, self._start_when_ready = self._start_when_ready, None
            self.action_start_run(demo=demo)

    def remember_config(self, config: dict[str, Any] | None) -> None:
        """The last run's choices become the default selection."""
        self.last_config = config
        if self.catalogue is not None and config and self._ready:
            self.choose(pick_default(self.catalogue, config))

    def choose(self, selection: Selection) -> None:
        """Set the pickers (from the palette, the welcome screen or a past run)."""
        self.selection = selection
        if self.catalogue is not None and self._ready:
            panel = self.query_one(SetupPanel)
            panel.apply(selection)
            self.selection = panel.selection

    def choose_demo(self) -> None:
        self.choose(Selection(model=DEMO_MODEL, profile=DEMO_PROFILE, precision=DEMO_PRECISION))

    def on_selection_changed(self, message: SelectionChanged) -> None:
        self.selection = message.selection

    def on_setup_panel_list_requested(self, message: SetupPanel.ListRequested) -> None:
        from kiln_lab.tui.screens.modals import ChoiceScreen

        panel, picker = message.panel, message.picker

        def chosen(answer: tuple[Any] | None) -> None:
            if answer is not None:
                panel.set_value(picker.key, answer[0])

        current = value_of(panel.selection, picker.key)
        self.app.push_screen(ChoiceScreen(picker.label, message.options, current), chosen)

    def on_setup_panel_file_requested(self, message: SetupPanel.FileRequested) -> None:
        """The file picker, for the model chosen now; a file chosen becomes the data."""
        from pathlib import Path

        from kiln_lab.tui.screens.data_file import DataFileScreen

        panel = message.panel
        model = self.catalogue.model(panel.selection.model) if self.catalogue else None

        def chosen(answer: DataFile | None) -> None:
            if answer is not None:
                panel.set_value("dataset", answer)

        screen = DataFileScreen(
            model=model.name if model else None,
            task=model.task if model else None,
            start=panel.selection.dataset_file,
            root=Path.cwd(),
        )
        self.app.push_screen(screen, chosen)

    def on_setup_panel_model_add_requested(self, message: SetupPanel.ModelAddRequested) -> None:
        """A model directory of the operator's own, added as a card and then chosen."""
        from kiln_lab.tui.screens.add_model import AddModelScreen

        def added(name: str | None) -> None:
            if name is not None:
                self._added_model = name  # chosen once the catalogue has read its card
                self.kiln.reload_catalogue()

        self.app.push_screen(AddModelScreen(), added)

    def on_setup_panel_count_requested(self, message: SetupPanel.CountRequested) -> None:
        """Any count of examples (or all), typed."""
        from kiln_lab.tui.screens.example_count import ExampleCountScreen

        panel = message.panel

        def chosen(answer: tuple[int | None] | None) -> None:
            if answer is not None:
                panel.set_value("limit", answer[0])

        self.app.push_screen(ExampleCountScreen(panel.selection.limit), chosen)

    def update_left(self, view: RunView | None) -> None:
        if view is not None:
            self.query_one(RunInfo).show(view)

    # -- starting a run ---------------------------------------------------------------------
    def action_start_run(self, demo: bool = False) -> None:
        if self.catalogue is None:
            self._start_when_ready = demo
            self.notify("reading model cards and profiles; the run starts when they are in")
            return
        if demo:
            if self.catalogue.model(DEMO_MODEL) is None:
                self.kiln.show_error(
                    {
                        "title": "Demo model not installed",
                        "message": f"the model card '{DEMO_MODEL}' is not among this "
                        "installation's cards, so there is no demo to run",
                        "hint": f"`kiln finetune {DEMO_MODEL}` trains it; or choose any "
                        "other model on the left and press r",
                    }
                )
                return
            self.choose_demo()
        if self.view is not None and not self.view.is_finished:
            self.notify(f"run {self.view.run_id} is still going (c cancels it)", severity="warning")
            return
        if self.pending:
            return
        try:
            config = self.selection.to_config(self.catalogue)
        except Exception as exc:  # noqa: BLE001 - a KilnError from RunConfig validation
            from kiln_lab.tui.screens.modals import error_dict

            self.kiln.show_error(error_dict(exc))
            return
        self.pending = "checking the model, profile and data before starting…"
        self.refresh_panes(force=True)
        self._launch(config)

    @work(thread=True, exclusive=True, group="launch", exit_on_error=False)
    def _launch(self, config: Any) -> None:
        from kiln_lab.core.errors import KilnError
        from kiln_lab.core.launcher import launch
        from kiln_lab.core.stages.resolve import preflight
        from kiln_lab.core.store import RunStore

        try:
            preflight(config)
            with RunStore(self.kiln.store_path) as store:
                run_id = launch(config, store)
        except KilnError as exc:
            self.post_message(RunLaunchFailed(exc.to_dict()))
        except Exception as exc:  # noqa: BLE001 - never let a launch bug kill the app
            from kiln_lab.tui.screens.modals import error_dict

            self.post_message(RunLaunchFailed(error_dict(exc)))
        else:
            self.post_message(RunLaunched(run_id))

    def on_run_launched(self, message: RunLaunched) -> None:
        self.pending = None
        self.attach(message.run_id)

    def on_run_launch_failed(self, message: RunLaunchFailed) -> None:
        self.pending = None
        self.refresh_panes(force=True)
        self.kiln.show_error(message.error)

    def action_back(self) -> None:
        self.log_panel.close_search()
