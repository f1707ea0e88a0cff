"""The Kiln terminal app: bindings, screens and the command palette; nothing else.

Runs execute in worker processes and are read back from the run store by thread
workers, so the app never blocks on the pipeline and never owns it. Heavy imports
(pydantic model cards, ONNX Runtime's availability check, the store) happen in those
threads after the first frame. Its length is the command palette's entries and the
bindings' actions, one short method each.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import var
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from kiln_lab.core.stages import STAGES
from kiln_lab.tui.catalogue import Catalogue
from kiln_lab.tui.screens.main import MainScreen
from kiln_lab.tui.screens.modals import (
    ConfirmCancelScreen,
    ErrorScreen,
    HelpScreen,
    QuitScreen,
    error_dict,
)
from kiln_lab.tui.screens.monitor import MonitorScreen
from kiln_lab.tui.state import LEVELS

KILN_WORKER_GROUPS = frozenset(
    {"catalogue", "store", "cancel", "compare", "launch", "tail", "runs", "environment"}
)
"""Thread workers of ours; a failure in one is shown (Textual's own handle theirs)."""


class KilnApp(App[int]):
    TITLE = "Kiln"
    CSS_PATH = Path(__file__).with_name("app.tcss")
    ENABLE_COMMAND_PALETTE = True

    BINDINGS = [
        Binding("q", "request_quit", "Quit"),
        Binding("ctrl+q", "request_quit", "Quit", show=False, priority=True),
        Binding("ctrl+c", "request_quit", "Quit", show=False, priority=True),
        Binding("question_mark", "help", "Help"),
    ]

    catalogue: var[Catalogue | None] = var(None)
    """Model cards, datasets and profiles, once a thread has read them."""

    def __init__(
        self,
        *,
        attach: str | None = None,
        store_path: Path | str | None = None,
        clock: Callable[[], float] = time.time,
        catch_errors: bool = False,
        show_welcome: bool | None = None,
    ) -> None:
        super().__init__()
        self.attach_to = attach
        self.store_path = Path(store_path) if store_path is not None else None
        self.clock = clock
        """Wall-clock source for elapsed times (frozen in snapshot tests)."""
        self.catch_errors = catch_errors
        self.show_welcome = show_welcome
        """None: when the store has no runs; True/False: always/never (tests)."""
        self.first_run = False
        self._bugs_shown: set[str] = set()
        self._catalogue_reads = 0
        """Readings of the catalogue started; only the newest may publish what it read."""
        self.main_screen = MainScreen()
        if self.no_color:
            from kiln_lab.tui.nocolor import install

            install(self)

    # -- start-up ---------------------------------------------------------------------------
    async def on_mount(self) -> None:
        await self.push_screen(self.main_screen)
        # The first frame goes out before any worker competes for the CPU.
        self.call_after_refresh(self._start_workers)

    def _start_workers(self) -> None:
        # What exists now lives as long as the app: keep the garbage collector from
        # walking it again and again while a run streams (shorter pauses on key presses).
        gc.freeze()
        self._load_catalogue()
        self._open_store()

    def reload_catalogue(self) -> None:
        """Read the cards and profiles again (a card was added)."""
        self._load_catalogue()

    def _load_catalogue(self) -> None:
        self._catalogue_reads += 1
        self._read_catalogue(self._catalogue_reads)

    @work(thread=True, exit_on_error=False, group="catalogue")
    def _read_catalogue(self, reading: int) -> None:
        """Ask ``python -m kiln_lab.tui.probe`` (see there why a process); it answers twice.

        A reading started later supersedes this one: the first reading's second answer
        (the slow availability checks) could otherwise land after a reload's first and
        put back a catalogue without the card just added.
        """
        from kiln_lab.tui.probe import from_json

        # kiln_lab is installed in this interpreter: ``-m`` finds it from any cwd.
        proc = subprocess.Popen(  # noqa: S603 - fixed argument list, no shell
            [sys.executable, "-m", "kiln_lab.tui.probe"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        catalogue = None
        assert proc.stdout is not None and proc.stderr is not None
        for line in proc.stdout:
            catalogue = from_json(line)
            if not self.call_from_thread(self._publish_catalogue, reading, catalogue):
                proc.kill()  # superseded: the newer reading answers instead
                proc.communicate()
                return
        errors = proc.stderr.read()
        if proc.wait() != 0 or catalogue is None:
            self.call_from_thread(
                self.show_error,
                {
                    "title": "Model cards and profiles could not be read",
                    "message": errors.strip().splitlines()[-1]
                    if errors.strip()
                    else f"the catalogue probe exited with status {proc.returncode}",
                    "hint": "run `kiln models` and `kiln profiles` to see the full error",
                },
            )
            return
        for problem in catalogue.problems:
            self.call_from_thread(self.show_error, problem)

    def _publish_catalogue(self, reading: int, catalogue: Catalogue) -> bool:
        """Runs on the app's thread, where readings are counted: no race with a reload."""
        if reading != self._catalogue_reads:
            return False
        self.catalogue = catalogue
        return True

    @work(thread=True, exit_on_error=False, group="store")
    def _open_store(self) -> None:
        from kiln_lab.core.errors import KilnError
        from kiln_lab.core.store import RunStore

        try:
            with RunStore(self.store_path) as store:
                attach = store.run(self.attach_to).id if self.attach_to else None
                records = store.runs(limit=50)
                going = [
                    r
                    for r in records
                    if not r.finished and not store.mark_interrupted_if_dead(r.id)
                ]
        except KilnError as exc:
            self.call_from_thread(self.show_error, exc.to_dict())
            return
        self.call_from_thread(self._store_opened, attach, records, going)
        from kiln_lab.core.cache import size_warning

        if (warning := size_warning()) is not None:  # over the limit: say how to trim it
            self.call_from_thread(self.notify, warning, severity="warning", timeout=20)

    def _store_opened(self, attach: str | None, records: list[Any], going: list[Any]) -> None:
        main = self.main_screen
        if records:
            main.remember_config(records[0].config)
        target = attach or (going[0].id if going else records[0].id if records else None)
        if target is not None:
            main.attach(target)
        welcome = self.show_welcome if self.show_welcome is not None else not records
        self.first_run = not records
        if welcome and attach is None:
            from kiln_lab.tui.screens.welcome import WelcomeScreen

            self.push_screen(WelcomeScreen(), self._welcome_closed)

    def _welcome_closed(self, choice: str | None) -> None:
        if choice == "demo":
            self.main_screen.action_start_run(demo=True)

    # -- shared actions ---------------------------------------------------------------------
    def show_error(self, error: dict[str, Any]) -> None:
        """Show a KilnError (as a dict) in a modal, once."""
        top = self.screen
        if isinstance(top, ErrorScreen) and (
            top.error.get("title"),
            top.error.get("message"),
        ) == (error.get("title"), error.get("message")):
            return
        self.push_screen(ErrorScreen(error))

    def confirm_cancel(self, run_id: str) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._request_cancel(run_id)

        self.push_screen(ConfirmCancelScreen(run_id), answered)

    @work(thread=True, exit_on_error=False, group="cancel")
    def _request_cancel(self, run_id: str) -> None:
        from kiln_lab.core.errors import KilnError
        from kiln_lab.core.store import RunStore

        try:
            with RunStore(self.store_path) as store:
                store.request_cancel(run_id)
        except KilnError as exc:
            self.call_from_thread(self.show_error, exc.to_dict())
            return
        self.call_from_thread(
            self.notify,
            f"cancel requested: {run_id} stops after the current batch",
            title="Cancelling",
        )

    @work(thread=True, exit_on_error=False, group="cancel")
    def request_stop_evaluation(self, run_id: str) -> None:
        from kiln_lab.core.errors import KilnError
        from kiln_lab.core.store import RunStore

        try:
            with RunStore(self.store_path) as store:
                store.request_stop_evaluation(run_id)
        except KilnError as exc:
            self.call_from_thread(self.show_error, exc.to_dict())
            return
        self.call_from_thread(
            self.notify,
            f"{run_id} stops evaluating at its next shard boundary and keeps its figures",
            title="Stopping the evaluation",
        )

    def running_run(self) -> str | None:
        """The run in view (top screen first, then the main screen) if it is still going."""
        for screen in (self.screen, self.main_screen):
            view = getattr(screen, "view", None)
            if view is not None and not view.is_finished:
                return view.run_id
        return None

    def action_request_quit(self) -> None:
        if isinstance(self.screen, QuitScreen):
            return
        run_id = self.running_run()
        if run_id is None:
            self.exit(0)
            return

        def answered(choice: str | None) -> None:
            if choice == "cancel":
                from kiln_lab.core.store import RunStore

                with RunStore(self.store_path) as store:
                    store.request_cancel(run_id)
                self.exit(0, message=f"cancelling {run_id}; it stops after the current batch")
            elif choice == "leave":
                self.exit(0, message=f"{run_id} keeps running: `kiln attach {run_id}` follows it")

        self.push_screen(QuitScreen(run_id), answered)

    def action_help(self) -> None:
        screen = self.screen
        if isinstance(screen, HelpScreen):
            screen.dismiss(None)
            return
        keys: list[tuple[str, str]] = []
        seen: set[str] = set()
        for active in screen.active_bindings.values():
            binding = active.binding
            if not binding.description or binding.description in seen:
                continue
            seen.add(binding.description)
            keys.append((self.get_key_display(binding), binding.description))
        keys.append(("ctrl+p", "command palette: every action by name"))
        title = getattr(screen, "SCREEN_TITLE", "Kiln")
        # Kept once built (per screen and keys), so opening help again costs no compose.
        name = f"help-{type(screen).__name__}-{hash(tuple(keys))}"
        if not self.is_screen_installed(name):
            self.install_screen(HelpScreen(title, getattr(screen, "HELP", "") or "", keys), name)
        self.push_screen(name)

    def action_show_runs(self) -> None:
        from kiln_lab.tui.screens.runs import RunsScreen

        if not isinstance(self.screen, RunsScreen):
            self.push_screen(RunsScreen())

    def action_show_matrix(self) -> None:
        from kiln_lab.tui.screens.matrix import MatrixScreen

        if not isinstance(self.screen, MatrixScreen):
            self.push_screen(MatrixScreen())

    def action_show_welcome(self) -> None:
        from kiln_lab.tui.screens.welcome import WelcomeScreen

        if not isinstance(self.screen, WelcomeScreen):
            self.push_screen(WelcomeScreen(), self._welcome_closed)

    # -- command palette --------------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        main = self.main_screen
        yield SystemCommand(
            "Start run",
            "start a run with the current selection (r)",
            self._on_main(main.action_start_run),
        )
        yield SystemCommand(
            "Run the demo",
            "zh-ner-tiny on CPU · ONNX Runtime, fp32",
            self._on_main(partial(main.action_start_run, demo=True)),
        )
        yield SystemCommand(
            "Cancel run",
            "cancel the run in view (c)",
            lambda: self._monitor(screen).action_cancel_run(),
        )
        yield SystemCommand(
            "Runs", "the run history: open, mark and compare runs (h)", self.action_show_runs
        )
        yield SystemCommand(
            "Matrix",
            "a matrix's cells: accuracy, deltas, speed and host per cell (kiln matrix)",
            self.action_show_matrix,
        )
        yield SystemCommand(
            "Welcome", "environment check and the built-in demo (w)", self.action_show_welcome
        )
        yield SystemCommand("Help", "help and keys for this screen (?)", self.action_help)
        yield SystemCommand(
            "Search log",
            "search the run log (/)",
            lambda: self._monitor(screen).action_search_log(),
        )
        yield SystemCommand(
            "Follow log",
            "jump to the end of the log and follow it (f)",
            lambda: self._monitor(screen).action_follow_log(),
        )
        yield SystemCommand(
            "Log: full width",
            "the log alone across the screen, and back (z)",
            lambda: self._monitor(screen).action_zoom_log(),
        )
        yield SystemCommand(
            "Log: every stage",
            "show log lines of all stages",
            lambda: self._monitor(screen).set_log_stage(None),
        )
        for stage in STAGES:
            yield SystemCommand(
                f"Log: stage {stage}",
                f"show only {stage} log lines",
                partial(self._log_stage, screen, stage),
            )
        for level in LEVELS:
            yield SystemCommand(
                f"Log: level {level}+",
                f"show {level} lines and above",
                partial(self._log_level, screen, level),
            )
        if screen.__class__.__name__ == "RunsScreen":
            yield SystemCommand(
                "Compare marked runs", "side by side with deltas (d)", screen.action_compare
            )  # type: ignore[attr-defined]
        catalogue = self.catalogue
        if catalogue is not None:
            for model in catalogue.models:
                weights = "weights found" if model.weights else "perf-only"
                yield SystemCommand(
                    f"Model: {model.name}",
                    f"{model.family} · {model.task_short} · {weights}",
                    partial(self._choose, model=model.name),
                )
            for profile in catalogue.profiles:
                state = {True: "available", None: "checking…"}.get(
                    profile.available, f"unavailable: {profile.reason}"
                )
                yield SystemCommand(
                    f"Profile: {profile.name}",
                    f"{profile.title} · {state}",
                    partial(self._choose, profile=profile.name),
                )
            precisions = sorted({p for prof in catalogue.profiles for p in prof.precisions})
            for precision in precisions:
                yield SystemCommand(
                    f"Precision: {precision}",
                    "if the profile offers it",
                    partial(self._choose, precision=precision),
                )
        yield SystemCommand(
            "Quit", "quit; a run in progress may keep going (q)", self.action_request_quit
        )
        yield from super().get_system_commands(screen)

    def _on_main(self, action: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            while self.screen is not self.main_screen and len(self.screen_stack) > 1:
                self.pop_screen()
            action()

        return run

    def _monitor(self, screen: Screen) -> MonitorScreen:
        return screen if isinstance(screen, MonitorScreen) else self.main_screen

    def _log_stage(self, screen: Screen, stage: str) -> None:
        self._monitor(screen).set_log_stage(stage)

    def _log_level(self, screen: Screen, level: str) -> None:
        self._monitor(screen).set_log_level(level)

    def _choose(self, **change: Any) -> None:
        main = self.main_screen
        self._on_main(lambda: main.choose(main.selection.with_(**change)))()

    # -- errors never end the app -----------------------------------------------------------
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A thread worker that raised: its error is shown, never silently lost."""
        error = event.worker.error
        mine = event.worker.group in KILN_WORKER_GROUPS
        if mine and event.state == WorkerState.ERROR and error is not None:
            self._log_exception(error)
            self.show_error(error_dict(error))

    def report_bug(self, error: Exception) -> None:
        """A bug caught where it happened: logged and shown once; re-raised in tests."""
        if not self.catch_errors:
            raise error
        key = f"{type(error).__name__}: {error}"
        if key in self._bugs_shown:
            return
        self._bugs_shown.add(key)
        self._log_exception(error)
        self.show_error(error_dict(error))

    def _log_exception(self, error: BaseException) -> None:
        from kiln_lab.core.paths import kiln_home

        logs = kiln_home() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / "app.log", "a", encoding="utf-8") as fh:
            fh.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            fh.write("".join(traceback.format_exception(error)))

    def _handle_exception(self, error: Exception) -> None:
        if not self.catch_errors:
            super()._handle_exception(error)
            return
        try:
            self._log_exception(error)
            self.show_error(error_dict(error))
        except Exception:  # noqa: BLE001 - showing the error failed: fall back to Textual's
            super()._handle_exception(error)


def run_app(attach: str | None = None) -> int:
    """Open the app (``kiln``, ``kiln app``); ``attach`` opens that run live."""
    app = KilnApp(attach=attach, catch_errors=True)
    result = app.run()
    return int(result or 0) if app.return_code in (None, 0) else int(app.return_code or 1)
