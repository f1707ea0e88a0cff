"""The app driven by Textual's pilot: choosing, running, cancelling, history, comparing."""

from __future__ import annotations

import os
from pathlib import Path

import fake_runs
import pytest
from textual.widgets import DataTable

from kiln_lab.core.store import RunStore
from kiln_lab.tui.app import KilnApp
from kiln_lab.tui.catalogue import Selection
from kiln_lab.tui.screens.compare import CompareScreen
from kiln_lab.tui.screens.main import MainScreen
from kiln_lab.tui.screens.modals import ChoiceScreen, ErrorScreen, HelpScreen, QuitScreen
from kiln_lab.tui.screens.run_detail import RunScreen
from kiln_lab.tui.screens.runs import RunsScreen
from kiln_lab.tui.screens.welcome import WelcomeScreen
from kiln_lab.tui.widgets.accuracy_pane import AccuracyPane
from kiln_lab.tui.widgets.log_view import LogView
from kiln_lab.tui.widgets.setup_panel import PICKERS, SetupPanel


def app_for(store: Path | None = None, **kwargs) -> KilnApp:
    return KilnApp(store_path=store, **kwargs)


async def choose(pilot, key: str, value) -> None:
    """Pick a value the way an operator does: row with the arrows, enter, the list, enter."""
    from textual.widgets import OptionList

    panel = pilot.app.main_screen.query_one(SetupPanel)
    panel.focus()
    target = [p.key for p in PICKERS].index(key)
    while panel.row != target:
        await pilot.press("down")
    await pilot.press("enter")
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, ChoiceScreen)
    values = [c.value for c in screen.options]
    option_list = screen.query_one(OptionList)
    for _ in range(50):
        if option_list.highlighted is not None:
            break
        await pilot.pause(0.02)
    steps = values.index(value) - option_list.highlighted
    for _ in range(abs(steps)):
        await pilot.press("down" if steps > 0 else "up")
    await pilot.press("enter")
    await pilot.pause()


async def test_choosing_model_profile_and_precision(
    fixed_assets: Path, profiles_with_unavailable: Path, kiln_home: Path, until, text_of
) -> None:
    app = app_for(show_welcome=False)
    async with app.run_test(size=(120, 40)) as pilot:
        main = app.main_screen
        await until(
            pilot,
            lambda: (
                main.catalogue is not None
                and all(p.available is not None for p in main.catalogue.profiles)
            ),
        )
        await choose(pilot, "model", "tiny-senti-roberta")
        assert main.selection.model == "tiny-senti-roberta"
        await choose(pilot, "profile", "cpu-torch")
        assert main.selection.profile == "cpu-torch"
        offered = main.catalogue.profile("cpu-torch").precisions
        panel = main.query_one(SetupPanel)
        assert [c.value for c in panel.options("precision")] == list(offered)
        await choose(pilot, "profile", "cpu-onnxruntime")
        await choose(pilot, "precision", "int8")
        assert main.selection.precision == "int8"
        await choose(pilot, "profile", "vendor-missing")
        detail = text_of(panel)
        assert "unavailable" in detail and "definitely-not-a-kiln-tool" in detail
        assert main.selection.precision == "fp32"  # the only one that profile offers
        assert [c.value for c in panel.options("precision")] == ["fp32"]
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ErrorScreen))
        assert app.screen.error["title"] == "Toolchain not available"
        await pilot.press("escape")
        assert app.screen is main


@pytest.mark.slow  # ~16 s (a real worker: torch, export, evaluate); e2e covers it by default
@pytest.mark.timeout(120)
async def test_a_tiny_run_fills_the_accuracy_pane(tiny_assets: Path, kiln_home: Path, until):
    app = app_for(show_welcome=False)
    async with app.run_test(size=(80, 24)) as pilot:
        main = app.main_screen
        await until(pilot, lambda: main.catalogue is not None)
        main.choose(
            Selection(model="tiny-ner-bert", profile="cpu-onnxruntime", limit=50, batch_size=8)
        )
        await pilot.press("r")
        await until(pilot, lambda: main.view is not None, timeout=60)
        await until(pilot, lambda: main.view.accuracy is not None, timeout=90)
        await until(pilot, lambda: main.view.is_finished, timeout=90)
        await pilot.pause(0.3)
        assert main.view.status == "succeeded", main.view.error
        table = main.accuracy()
        assert table.task == "ner" and table.rows[0].live is not None
        assert table.rows[0].card == 0.5  # the fixture card's published figure
        rendered = str(main.query_one(AccuracyPane)._table)
        assert "entity_f1" in rendered
        done = {s.name: s.status for s in main.view.stages.values()}
        assert done["evaluate"] == "done" and done["report"] == "done"
        assert main.log_panel.log_view.total > 0


@pytest.mark.timeout(120)
async def test_cancelling_a_run(tiny_assets: Path, kiln_home: Path, until) -> None:
    app = app_for(show_welcome=False)
    async with app.run_test(size=(80, 24)) as pilot:
        main = app.main_screen
        await until(pilot, lambda: main.catalogue is not None)
        main.choose(Selection(model="tiny-ner-bert", profile="cpu-onnxruntime"))
        await pilot.press("r")
        await until(
            pilot, lambda: main.view is not None and main.view.status == "running", timeout=60
        )
        await pilot.press("c")
        await until(pilot, lambda: app.screen.__class__.__name__ == "ConfirmCancelScreen")
        await pilot.press("y")
        await until(pilot, lambda: main.view.is_finished, timeout=90)
        assert main.view.status == "cancelled"
        with RunStore() as store:
            assert store.run(main.view.run_id).status == "cancelled"


async def test_opening_a_past_run(fixed_assets: Path, fake_store: Path, until) -> None:
    app = app_for(show_welcome=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.main_screen.view is not None)
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.records)
        await pilot.press("down", "enter")  # the older, fp32 run
        await until(pilot, lambda: isinstance(app.screen, RunScreen))
        screen = app.screen
        await until(pilot, lambda: screen.view is not None and screen.view.is_finished)
        assert screen.view.run_id == "20260101-000000-aaaa"
        assert screen.view.accuracy["entity_f1"] == pytest.approx(0.7812)
        await pilot.pause(0.3)
        assert screen.log_panel.log_view.total >= 9
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)


async def test_comparing_two_runs(fixed_assets: Path, fake_store: Path, until) -> None:
    app = app_for(show_welcome=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.records)
        await pilot.press("d")  # nothing marked yet: a hint, no screen
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("down", "space", "up", "space")  # fp32 first, then int8
        assert app.screen.marked == ["20260101-000000-aaaa", "20260101-001000-bbbb"]
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.records)
        table = app.screen.query_one(DataTable)
        f1 = [str(c) for c in table.get_row("entity F1")]
        assert f1[1] == "0.7812" and f1[2].startswith("0.7655 −0.0157")
        speed = [str(c) for c in table.get_row("samples/s")]
        assert speed[2].endswith("×1.80")


async def test_log_search_and_filters(fixed_assets: Path, fake_store: Path, until) -> None:
    app = app_for(show_welcome=False)
    async with app.run_test(size=(120, 40)) as pilot:
        main = app.main_screen
        await until(pilot, lambda: main.view is not None and main.view.is_finished)
        await pilot.pause(0.3)
        log = main.query_one(LogView)
        everything = log.line_count
        await pilot.press("slash", *"parity", "enter")
        assert log.search == "parity" and log.line_count == 1
        await pilot.press("escape")
        assert log.search == "" and log.line_count == everything
        await pilot.press("l", "l")  # info+ -> warning+ -> error+
        assert log.line_count == 0
        await pilot.press("l")  # wraps to debug+
        assert log.line_count == everything
        await pilot.press("s")
        assert log.stage == "resolve" and log.line_count == 1


async def test_welcome_on_an_empty_store(
    fixed_assets: Path, kiln_home: Path, until, text_of
) -> None:
    app = app_for()
    async with app.run_test(size=(80, 24)) as pilot:
        await until(
            pilot,
            lambda: isinstance(app.screen, WelcomeScreen) and bool(app.screen.query("#run-demo")),
        )
        profiles = app.screen.query_one("#profiles")
        await until(pilot, lambda: "cpu-onnxruntime" in text_of(profiles))
        await until(pilot, lambda: "onnxruntime" in text_of(app.screen.query_one("#env")))
        assert "zh-ner-tiny" in text_of(app.screen.query_one("#run-demo"))
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape", "escape")
        assert isinstance(app.screen, MainScreen)
        assert app.first_run


async def test_quitting_during_a_run_asks_and_can_cancel(
    fixed_assets: Path, kiln_home: Path, until
) -> None:
    store_path = kiln_home / "runs.sqlite"
    events = fake_runs.run_events(
        fake_runs.NER_CONFIG, f1=0.8, speed=100.0, t0=fake_runs.T0, finish=False
    )
    with RunStore(store_path) as store:
        fake_runs.add_run(
            store,
            "20260101-010000-cccc",
            fake_runs.NER_CONFIG,
            events,
            created=fake_runs.T0,
            pid=os.getpid(),
        )
    app = app_for()
    async with app.run_test(size=(80, 24)) as pilot:
        main = app.main_screen
        await until(pilot, lambda: main.view is not None and main.view.current == "evaluate")
        assert main.live
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("escape")  # stay
        assert app.screen is main
        await pilot.press("q", "c")  # cancel the run and quit
    with RunStore(store_path) as store:
        assert store.cancel_requested("20260101-010000-cccc")


async def test_errors_show_as_a_modal_not_a_traceback(
    fixed_assets: Path, kiln_home: Path, until
) -> None:
    app = app_for(show_welcome=False, catch_errors=True)
    async with app.run_test(size=(80, 24)) as pilot:
        main = app.main_screen
        await until(pilot, lambda: main.catalogue is not None)
        # A card deleted since the catalogue was read: preflight refuses it.
        main.selection = Selection(model="no-such-model", profile="cpu-onnxruntime")
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ErrorScreen))
        assert app.screen.error["title"] == "Invalid configuration"
        assert "no model card named" in app.screen.error["message"]
        await pilot.press("escape")

        def boom(*args, **kwargs) -> None:
            raise RuntimeError("a bug")

        main.query_one(AccuracyPane).show = boom  # a drawing bug on the next repaint
        main.refresh_panes(force=True)
        await until(pilot, lambda: isinstance(app.screen, ErrorScreen))
        assert app.screen.error["title"] == "Internal error"
        await pilot.press("escape")
        main.refresh_panes(force=True)  # the same bug again: logged once, shown once
        await pilot.pause()
        assert app.screen is main
        await pilot.press("h")  # and the app still answers
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))
    assert (kiln_home / "logs" / "app.log").read_text().count("RuntimeError: a bug") == 1


async def test_attach_opens_a_given_run(fixed_assets: Path, fake_store: Path, until) -> None:
    app = app_for(attach="20260101-000000")  # a unique prefix is enough
    async with app.run_test(size=(80, 24)) as pilot:
        main = app.main_screen
        await until(pilot, lambda: main.view is not None and main.view.is_finished)
        assert main.view.run_id == "20260101-000000-aaaa"
        assert not isinstance(app.screen, WelcomeScreen)


def test_no_color_is_respected_and_stays_readable(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.style import Style
    from textual.color import Color

    from kiln_lab.tui.nocolor import ReadableMonochrome, readable_style

    monkeypatch.setenv("NO_COLOR", "1")
    app = KilnApp()
    assert app.no_color and any(isinstance(f, ReadableMonochrome) for f in app._filters)
    red_on_panel = readable_style(Style(color="red", bgcolor="grey11"))
    foreground = Color.from_rich_color(red_on_panel.color)
    background = Color.from_rich_color(red_on_panel.bgcolor)
    assert foreground.r == foreground.g == foreground.b  # no colour left
    assert foreground.brightness - background.brightness >= 0.4  # and readable


async def test_command_palette_lists_every_action(fixed_assets: Path, kiln_home: Path, until):
    app = app_for(show_welcome=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.catalogue is not None)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        for wanted in (
            "Start run",
            "Cancel run",
            "Runs",
            "Help",
            "Search log",
            "Quit",
            "Welcome",
            "Model: tiny-ner-bert",
            "Profile: cpu-torch",
            "Precision: int8",
            "Log: stage evaluate",
            "Log: level warning+",
        ):
            assert wanted in titles


async def test_the_demo_is_never_replaced_by_another_model(
    fixed_assets: Path, kiln_home: Path, until
) -> None:
    app = app_for()  # the fixed cards have no zh-ner-tiny
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, WelcomeScreen))
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ErrorScreen), timeout=60)
        assert app.screen.error["title"] == "Demo model not installed"
        assert app.main_screen.view is None
