"""Small modal screens: an error, a quit question, a cancel confirmation, help, and the
use-or-cancel dialog the data-file and example-count pickers are."""

from __future__ import annotations

from typing import Any, TypeVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from kiln_lab.core.errors import internal_error

Result = TypeVar("Result")


class UseOrCancelScreen(ModalScreen[Result | None]):
    """A dialog with a "use" button and a cancel one (escape too): the subclass says what
    ``action_use`` dismisses with; cancelling dismisses with None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", show=True)]

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "use":
            self.action_use()
        else:
            self.action_cancel()

    def action_use(self) -> None:
        raise NotImplementedError

    def action_cancel(self) -> None:
        self.dismiss(None)


class ErrorScreen(ModalScreen[None]):
    """A ``KilnError`` (or its dict from the store): title, message, where, and the fix."""

    AUTO_FOCUS = "#close"
    BINDINGS = [
        Binding("escape,enter,q", "dismiss_error", "Close", show=True),
    ]

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(classes="modal")
        self.error = error

    def compose(self) -> ComposeResult:
        error = self.error
        with Vertical(id="dialog", classes="error-dialog") as dialog:
            dialog.border_title = str(error.get("title") or "Error")
            body = Text()
            body.append(str(error.get("message") or ""))
            where = error.get("path")
            if where:
                line = error.get("line")
                body.append(f"\n\nwhere: {where}{f':{line}' if line else ''}", style="dim")
            if error.get("hint"):
                body.append("\n\nfix: ", style="bold")
                body.append(str(error["hint"]))
            yield VerticalScroll(Static(body, id="error-body"))
            with Horizontal(classes="buttons"):
                yield Button("Close", id="close", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_dismiss_error(self) -> None:
        self.dismiss(None)


def error_dict(exc: BaseException) -> dict[str, Any]:
    """A KilnError's dict, or an internal error's, for :class:`ErrorScreen`."""
    to_dict = getattr(exc, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return internal_error(exc, traceback_at="KILN_HOME/logs/app.log")


class QuitScreen(ModalScreen[str | None]):
    """Quitting while a run goes: leave it running (default), cancel it, or stay."""

    AUTO_FOCUS = "#leave"
    BINDINGS = [
        Binding("l,enter", "choose('leave')", "Leave running", show=True),
        Binding("c", "choose('cancel')", "Cancel run", show=True),
        Binding("escape,s", "choose(None)", "Stay", show=True),
    ]

    def __init__(self, run_id: str) -> None:
        super().__init__(classes="modal")
        self.run_id = run_id

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = "Quit Kiln"
            yield Static(
                Text.assemble(
                    ("Run ", ""),
                    (self.run_id, "bold"),
                    (" is still going. It runs in its own worker process, so it can keep ", ""),
                    ("going without the app; reopen Kiln (or ", ""),
                    (f"kiln attach {self.run_id}", "bold"),
                    (") to watch it again.", ""),
                )
            )
            with Horizontal(classes="buttons"):
                yield Button("Leave it running", id="leave", variant="primary")
                yield Button("Cancel the run", id="cancel", variant="error")
                yield Button("Stay", id="stay")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss({"leave": "leave", "cancel": "cancel"}.get(event.button.id or ""))

    def action_choose(self, choice: str | None) -> None:
        self.dismiss(choice)


class ConfirmCancelScreen(ModalScreen[bool]):
    AUTO_FOCUS = "#yes"
    BINDINGS = [
        Binding("y,enter", "answer(True)", "Cancel the run", show=True),
        Binding("n,escape", "answer(False)", "Keep it", show=True),
    ]

    def __init__(self, run_id: str) -> None:
        super().__init__(classes="modal")
        self.run_id = run_id

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = "Cancel run"
            yield Static(
                Text.assemble(
                    ("Cancel run ", ""),
                    (self.run_id, "bold"),
                    (
                        "? It stops after the current batch; events and figures so far stay "
                        "in the run store.",
                        "",
                    ),
                )
            )
            with Horizontal(classes="buttons"):
                yield Button("Cancel the run (y)", id="yes", variant="error")
                yield Button("Keep it (n)", id="no", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class HelpScreen(ModalScreen[None]):
    """Help for the screen underneath: what it is for, and every key that applies."""

    BINDINGS = [Binding("escape,q,question_mark", "close", "Close", show=True)]

    def __init__(self, title: str, text: str, keys: list[tuple[str, str]]) -> None:
        super().__init__(classes="modal")
        self.title_text, self.text, self.keys = title, text, keys

    def compose(self) -> ComposeResult:
        # Help is written as wrapped paragraphs in the source: reflow to the dialog's width.
        paragraphs = [" ".join(p.split()) for p in self.text.strip().split("\n\n")]
        text = Text("\n\n".join(paragraphs))
        text.append("\n\nKeys\n", style="bold underline")
        width = max((len(key) for key, _ in self.keys), default=4) + 2
        for key, description in self.keys:
            text.append(f"{key:<{width}}", style="bold")
            text.append(f"{description}\n")
        with Vertical(id="dialog", classes="help-dialog") as dialog:
            dialog.border_title = f"Help · {self.title_text}"
            yield VerticalScroll(Static(text, id="help-text"))

    def action_close(self) -> None:
        self.dismiss(None)


class ChoiceScreen(ModalScreen[tuple[Any] | None]):
    """The full list for one picker; dismisses with ``(value,)``, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", show=True)]

    def __init__(self, title: str, options: list[Any], current: Any) -> None:
        super().__init__(classes="modal")
        self.title_text, self.options, self.current = title, options, current

    def compose(self) -> ComposeResult:
        from textual.widgets import OptionList
        from textual.widgets.option_list import Option

        items = []
        for choice in self.options:
            prompt = Text.assemble(choice.label)
            if choice.detail:
                prompt.append(f"\n  {choice.detail}", style="dim")
            items.append(Option(prompt))
        with Vertical(id="dialog", classes="choice-dialog") as dialog:
            dialog.border_title = f"Choose the {self.title_text}"
            yield OptionList(*items, id="choices")

    def on_mount(self) -> None:
        self.call_after_refresh(self._highlight_current)

    def _highlight_current(self) -> None:
        from textual.widgets import OptionList

        values = [c.value for c in self.options]
        option_list = self.query_one(OptionList)
        option_list.highlighted = values.index(self.current) if self.current in values else 0
        option_list.focus()

    def on_option_list_option_selected(self, event: Any) -> None:
        event.stop()
        self.dismiss((self.options[event.option_index].value,))

    def action_cancel(self) -> None:
        self.dismiss(None)
