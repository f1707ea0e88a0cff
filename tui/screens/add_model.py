"""Add a model: a Hugging Face directory of the operator's own, read into a card.

The app's face of ``kiln models add``: the directory's ``config.json`` and tokenizer
say the family, task, labels and length (core/models/from_directory.py), the dialog asks
only what they do not say, the export is checked against PyTorch on a few synthetic
inputs, and the card goes to the user's Kiln home, never the checkout. Reading and the
check run in a worker thread; the dialog stays live and says what it is doing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static


class AddModelScreen(ModalScreen[str | None]):
    """Dismisses with the new card's name, or None when cancelled."""

    AUTO_FOCUS = "#path"
    CSS_PATH = Path(__file__).with_name("add_model.tcss")
    BINDINGS = [Binding("escape", "cancel", "Cancel", show=True)]

    def __init__(self, start: str | None = None) -> None:
        super().__init__(classes="modal")
        self.start = start or ""
        self.draft: Any = None

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="add-model-dialog") as dialog:
            dialog.border_title = "Add a model"
            yield Static(
                "A Hugging Face model directory (what save_pretrained wrote: config.json, "
                "the weights, the tokenizer). Its card is read off it and kept in your "
                "Kiln home."
            )
            yield Input(value=self.start, placeholder="path to the model directory", id="path")
            yield Static(id="found")
            yield Vertical(id="questions")
            yield Static(id="status")
            with Horizontal(classes="buttons"):
                yield Button("Read", id="read", variant="primary")
                yield Button("Check and add", id="add", disabled=True)
                yield Button("Cancel", id="cancel")

    # -- reading the directory ----------------------------------------------------------------
    @on(Input.Submitted, "#path")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._read(event.value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "read":
            self._read(self.query_one("#path", Input).value)
        elif event.button.id == "add":
            self._add(self._answers())
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _say(self, text: str, *, error: bool = False) -> None:
        status = self.query_one("#status", Static)
        status.set_class(error, "error")
        status.update(text)

    def _read(self, text: str) -> None:
        if not text.strip():
            self._say("type the model directory's path", error=True)
            return
        self._say("reading config.json and the tokenizer…")
        self.query_one("#add", Button).disabled = True
        self._draft(text.strip())

    @work(thread=True, exclusive=True, group="add-model")
    def _draft(self, path: str) -> None:
        from kiln_lab.core.errors import KilnError
        from kiln_lab.core.models.from_directory import draft_card

        try:
            draft = draft_card(path)
        except KilnError as exc:
            self.app.call_from_thread(self._say, _one_line(exc), error=True)
            return
        self.app.call_from_thread(self._show, draft)

    def _show(self, draft: Any) -> None:
        self.draft = draft
        values = draft.values
        labels = values.get("labels") or ()
        dataset = values.get("default_dataset")
        if dataset in (None, "", "none"):  # no built-in set of this task and labels
            dataset = "none built in: evaluate it with your own file"
        lines = [
            f"name      {values.get('name')}",
            f"family    {values.get('family')} · task {values.get('task', '?')}",
            f"labels    {', '.join(labels[:8])}{' …' if len(labels) > 8 else ''}",
            f"length    {values.get('max_seq_len', '?')} tokens · data {dataset}",
        ]
        self.query_one("#found", Static).update("\n".join(lines))
        box = self.query_one("#questions", Vertical)
        box.remove_children()
        for question in draft.questions:
            box.mount(Label(f"{question.prompt} ({question.reason})"))
            if question.choices:
                box.mount(
                    Select(
                        [(c, c) for c in question.choices],
                        id=f"q-{question.field}",
                        prompt=question.field.replace("_", " "),
                    )
                )
            else:
                box.mount(Input(id=f"q-{question.field}", placeholder=question.flag))
        open_ = len(draft.questions)
        self._say(
            f"{open_} question(s) the directory does not answer"
            if open_
            else "read; nothing to ask"
        )
        self.query_one("#add", Button).disabled = False

    def _answers(self) -> dict[str, Any]:
        answers: dict[str, Any] = {}
        for question in self.draft.questions if self.draft else ():
            widget = self.query_one(f"#q-{question.field}")
            value = widget.value
            if value is None or value == Select.BLANK or value == "":
                continue
            answers[question.field] = int(value) if question.field == "max_seq_len" else value
        return answers

    # -- checking and adding ------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="add-model")
    def _add(self, answers: dict[str, Any]) -> None:
        from kiln_lab.core.errors import KilnError
        from kiln_lab.core.models.add import quick_parity, write_user_card

        say = self.app.call_from_thread
        try:
            draft = self.draft.answered(**answers) if answers else self.draft
            card = draft.card(how_to_answer="answer the questions above")
            say(self._say, f"checking {card.name}: ONNX export against PyTorch on 8 inputs…")
            report = quick_parity(card)
            path = write_user_card(card, notes=draft.notes)
        except KilnError as exc:
            say(self._say, _one_line(exc), error=True)
            return
        except ValueError as exc:  # a length that is not a number
            say(self._say, str(exc), error=True)
            return
        say(self.app.notify, f"{card.name} added ({report.status}); its card: {path}")
        say(self.dismiss, card.name)


def _one_line(exc: Any) -> str:
    """A KilnError as the CLI says it: the file, what is wrong, the fix."""
    where = f"{exc.path}: " if getattr(exc, "path", None) else ""
    hint = f" — {exc.hint}" if getattr(exc, "hint", None) else ""
    return f"{where}{exc.message}{hint}"
