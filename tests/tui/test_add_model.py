"""Add a model from the app: a directory of the operator's own becomes a card, checked
for parity and kept in KILN_HOME/cards, then chosen in the model picker (issue 15)."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest
from textual.widgets import Button, Input, OptionList, Select, Static

from kiln_lab.tui.app import KilnApp
from kiln_lab.tui.screens.add_model import AddModelScreen
from kiln_lab.tui.screens.modals import ChoiceScreen
from kiln_lab.tui.widgets.setup_panel import ADD_MODEL, PICKERS, SetupPanel

_spec = importlib.util.spec_from_file_location(
    "kiln_test_models_add", Path(__file__).parents[1] / "core" / "test_models_add.py"
)
assert _spec is not None and _spec.loader is not None
_models_add = importlib.util.module_from_spec(_spec)
sys.modules["kiln_test_models_add"] = _models_add
_spec.loader.exec_module(_models_add)


def _text(widget: Static) -> str:
    return str(widget.render())


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
async def test_a_directory_is_added_from_the_model_picker(
    size, fixed_assets: Path, kiln_home: Path, tmp_path: Path, until
) -> None:
    # A head whose labels say nothing of the task: the dialog asks only for that.
    directory = _models_add._save_tiny_bert(tmp_path / "lab-ner", "token", ["O", "B-X", "I-X"])
    app = KilnApp(show_welcome=False)
    async with app.run_test(size=size) as pilot:
        main = app.main_screen
        await until(pilot, lambda: main.catalogue is not None)
        panel = main.query_one(SetupPanel)
        panel.focus()
        assert [c.value for c in panel.options("model")][-1] is ADD_MODEL
        assert [p.key for p in PICKERS][panel.row] == "model"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        options = app.screen.query_one(OptionList)
        await until(pilot, lambda: options.highlighted is not None)
        while options.highlighted != options.option_count - 1:
            await pilot.press("down")
        await pilot.press("enter")  # "add a model…"
        await until(pilot, lambda: isinstance(app.screen, AddModelScreen))
        dialog = app.screen

        dialog.query_one("#path", Input).value = str(tmp_path / "nowhere")
        await pilot.press("enter")
        status = dialog.query_one("#status", Static)
        await until(pilot, lambda: "nowhere" in _text(status))
        assert status.has_class("error") and dialog.query_one("#add", Button).disabled

        dialog.query_one("#path", Input).value = str(directory)
        await pilot.press("enter")
        await until(pilot, lambda: "lab-ner" in _text(dialog.query_one("#found", Static)))
        found = _text(dialog.query_one("#found", Static))
        assert "bert" in found and "token-classification" in found
        await until(pilot, lambda: not dialog.query_one("#add", Button).disabled)
        for select in dialog.query(Select):  # answer what the directory did not say
            select.value = select._options[-1][1] if select.value == Select.BLANK else select.value
        dialog.query_one("#add", Button).press()
        await until(pilot, lambda: app.screen is not dialog, timeout=60)
        assert (kiln_home / "cards" / "lab-ner.yaml").is_file()
        await until(pilot, lambda: main.catalogue.model("lab-ner") is not None, timeout=60)
        await until(pilot, lambda: panel.selection.model == "lab-ner")


async def test_an_older_reading_of_the_catalogue_cannot_undo_a_newer(
    fixed_assets: Path, kiln_home: Path, until
) -> None:
    # The first reading answers twice, the second time after slow availability checks; on
    # a loaded machine that answer came after a reload's, without the card just added.
    app = KilnApp(show_welcome=False)
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.catalogue is not None)
        first = app._catalogue_reads
        newer = app.catalogue
        older = dataclasses.replace(newer, models=newer.models[:-1])
        app.reload_catalogue()
        assert not app._publish_catalogue(first, older)
        assert app.catalogue is newer
        assert app._publish_catalogue(app._catalogue_reads, older)
        assert app.catalogue is older
