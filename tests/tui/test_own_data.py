"""The operator's own data in the app: datasets of the model's task only, a file picker
that finds the format and says whether the file fits, and any example count."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input, OptionList, Static

from kiln_lab.tui.app import KilnApp
from kiln_lab.tui.screens.data_file import DataFileScreen
from kiln_lab.tui.screens.example_count import ExampleCountScreen, parse_count
from kiln_lab.tui.screens.modals import ChoiceScreen
from kiln_lab.tui.widgets.setup_panel import BROWSE, PICKERS, DataFile, SetupPanel

DATA = Path(__file__).resolve().parent.parent / "data" / "datasets"


async def ready(pilot, until) -> SetupPanel:
    main = pilot.app.main_screen
    await until(pilot, lambda: main.catalogue is not None)
    panel = main.query_one(SetupPanel)
    panel.focus()
    return panel


async def open_row(pilot, panel: SetupPanel, key: str) -> None:
    target = [p.key for p in PICKERS].index(key)
    while panel.row != target:
        await pilot.press("down")
    await pilot.press("enter")
    await pilot.pause()


def kind_text(screen: DataFileScreen) -> str:
    return str(screen.query_one("#file-kind", Static).render())


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
async def test_datasets_follow_the_model_task_and_a_file_is_picked(
    size, fixed_assets: Path, kiln_home: Path, until
) -> None:
    app = KilnApp(show_welcome=False)
    async with app.run_test(size=size) as pilot:
        main = app.main_screen
        panel = await ready(pilot, until)
        panel.set_value("model", "tiny-senti-roberta")
        offered = [c.value for c in panel.options("dataset")]
        assert offered == [None, BROWSE]  # shopping-reviews is the card's; no NER set
        panel.set_value("model", "tiny-ner-bert")
        assert [c.value for c in panel.options("dataset")] == [None, BROWSE]  # no sentiment set
        every = [name for name, _ in main.catalogue.datasets]
        assert [n for n, _ in main.catalogue.datasets_for(None)] == every  # task unknown: all

        panel.set_value("model", "tiny-senti-roberta")
        await open_row(pilot, panel, "dataset")
        assert isinstance(app.screen, ChoiceScreen)
        option_list = app.screen.query_one(OptionList)
        await until(pilot, lambda: option_list.highlighted is not None)
        while option_list.highlighted != option_list.option_count - 1:
            await pilot.press("down")
        await pilot.press("enter")  # "your file…"
        await until(
            pilot,
            lambda: isinstance(app.screen, DataFileScreen) and bool(app.screen.query("#file-kind")),
        )
        picker = app.screen

        # A file of another task: found, named, and refused.
        path_box = picker.query_one("#file-path", Input)
        path_box.value = str(DATA / "xnli_zh_simple.tsv")
        await until(pilot, lambda: "sentence pairs" in kind_text(picker))
        assert "xnli" in kind_text(picker) and "single-text classifier" in kind_text(picker)
        assert picker.found is None
        await pilot.press("enter")
        assert app.screen is picker  # not taken

        # A file of the model's task: format shown, taken with enter.
        path_box.value = str(DATA / "sst2_sample.tsv")
        await until(pilot, lambda: "fits tiny-senti-roberta" in kind_text(picker))
        assert "tsv · single texts (TSV, 2 labels) · 8 examples" in kind_text(picker)
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is main)
        selection = main.selection
        assert (selection.dataset, selection.dataset_format) == (None, "tsv")
        assert selection.dataset_file == str((DATA / "sst2_sample.tsv").resolve())
        await until(pilot, lambda: "sst2_sample.tsv" in str(panel.render()))
        config = selection.to_config(main.catalogue)
        assert (config.dataset_file, config.dataset_format, config.dataset) == (
            selection.dataset_file,
            "tsv",
            None,
        )
        # Stepping with the arrows never opens the picker; it goes back to the built-ins.
        await pilot.press("right")
        assert app.screen is main and main.selection.dataset_file is None


async def test_the_path_box_completes_and_the_tree_fills_it(
    fixed_assets: Path, kiln_home: Path, until
) -> None:
    app = KilnApp(show_welcome=False)
    async with app.run_test(size=(100, 40)) as pilot:
        await ready(pilot, until)
        app.push_screen(
            DataFileScreen(model="tiny-ner-bert", task="token-classification", root=DATA)
        )
        await until(
            pilot,
            lambda: isinstance(app.screen, DataFileScreen) and bool(app.screen.query("#file-path")),
        )
        picker = app.screen
        box = picker.query_one("#file-path", Input)
        await pilot.press(*str(DATA / "peoples_daily_s"))
        await until(pilot, lambda: box._suggestion.endswith(".bio"))
        await pilot.press("right")  # at the end of the box: takes the completion
        assert box.value == str(DATA / "peoples_daily_sample.bio")
        await until(pilot, lambda: "fits tiny-ner-bert" in kind_text(picker))
        assert "bio · tagged characters (BIO, 3 entity types)" in kind_text(picker)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, DataFileScreen))


async def test_any_example_count_or_all(fixed_assets: Path, kiln_home: Path, until) -> None:
    app = KilnApp(show_welcome=False)
    async with app.run_test(size=(80, 24)) as pilot:
        main = app.main_screen
        panel = await ready(pilot, until)
        await open_row(pilot, panel, "limit")
        assert isinstance(app.screen, ExampleCountScreen)
        box = app.screen.query_one("#count", Input)
        box.value = ""
        await pilot.press(*"-3")
        await pilot.press("enter")
        assert isinstance(app.screen, ExampleCountScreen)  # refused, with the reason
        assert "not a positive whole number" in str(app.screen.query_one("#count-error").render())
        box.value = ""
        await pilot.press(*"1,250", "enter")
        await until(pilot, lambda: app.screen is main)
        assert main.selection.limit == 1250
        assert "first 1,250" in str(panel.render())
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ExampleCountScreen))
        app.screen.query_one("#count", Input).value = "all"
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is main)
        assert main.selection.limit is None


def test_parse_count() -> None:
    assert parse_count("all") is None and parse_count(" ALL ") is None and parse_count("") is None
    assert parse_count("300") == 300 and parse_count("10_000") == 10_000
    for bad in ("0", "-1", "2.5", "lots", "1e3"):
        with pytest.raises(ValueError):
            parse_count(bad)


def test_a_file_value_round_trips_through_the_selection() -> None:
    from kiln_lab.tui.catalogue import Selection
    from kiln_lab.tui.widgets.setup_panel import assign, value_of

    chosen = assign(Selection(dataset="x"), "dataset", DataFile("/d/f.bio", "bio"))
    assert (chosen.dataset, chosen.dataset_file, chosen.dataset_format) == (None, "/d/f.bio", "bio")
    assert value_of(chosen, "dataset") == DataFile("/d/f.bio", "bio")
    back = assign(chosen, "dataset", "peoples-daily-1998")
    assert (back.dataset, back.dataset_file) == ("peoples-daily-1998", None)


async def test_a_catalogue_arriving_right_after_a_pick_keeps_it(
    fixed_assets: Path, kiln_home: Path, until
) -> None:
    """The probe answers twice; its second catalogue once landed between a pick in the
    panel and the message that tells the screen, and put the older selection back."""
    app = KilnApp(show_welcome=False)
    async with app.run_test(size=(100, 40)) as pilot:
        main = app.main_screen
        panel = await ready(pilot, until)
        panel.set_value("limit", 1250)
        main._catalogue_changed(main.catalogue)  # before SelectionChanged is handled
        assert panel.selection.limit == 1250
        await pilot.pause()
        assert main.selection.limit == 1250 and "1,250" in str(panel.render())
