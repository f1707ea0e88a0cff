"""How many examples to score: any positive count, or all, typed in a box.

A fixed list (50, 200, 1000, 5000) could not give the 300 a colleague's report used,
or a count that matches a vendor tool's batch; the box takes any, and refuses anything
that is not a positive whole number or "all" with the reason beside it.
"""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.validation import ValidationResult, Validator
from textual.widgets import Button, Input, Static

from kiln_lab.tui.screens.modals import UseOrCancelScreen


def parse_count(text: str) -> int | None:
    """``"all"`` (or nothing) -> None; ``"1,000"`` -> 1000; ValueError for anything else."""
    cleaned = text.strip().lower().replace(",", "").replace("_", "")
    if cleaned in ("", "all"):
        return None
    if not cleaned.isdigit() or int(cleaned) < 1:
        raise ValueError(f"{text.strip()!r} is not a positive whole number or 'all'")
    return int(cleaned)


class CountValidator(Validator):
    def validate(self, value: str) -> ValidationResult:
        try:
            parse_count(value)
        except ValueError as exc:
            return self.failure(str(exc))
        return self.success()


class ExampleCountScreen(UseOrCancelScreen[tuple[int | None]]):
    """Dismisses with ``(count,)`` (None meaning all), or None when cancelled."""

    AUTO_FOCUS = "#count"
    CSS_PATH = Path(__file__).with_name("example_count.tcss")

    def __init__(self, current: int | None) -> None:
        super().__init__(classes="modal")
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="count-dialog") as dialog:
            dialog.border_title = "Examples to score"
            yield Static("The first N examples of the split (a quick look), or all of them.")
            yield Input(
                value="all" if self.current is None else str(self.current),
                placeholder="a positive number, or all",
                validators=[CountValidator()],
                id="count",
            )
            yield Static(id="count-error")
            with Horizontal(classes="buttons"):
                yield Button("Use", id="use", variant="primary")
                yield Button("Cancel", id="cancel")

    @on(Input.Changed, "#count")
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        result = event.validation_result
        message = "" if result is None or result.is_valid else result.failure_descriptions[0]
        self.query_one("#count-error", Static).update(message)

    @on(Input.Submitted, "#count")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_use()

    def action_use(self) -> None:
        value = self.query_one("#count", Input).value
        try:
            count = parse_count(value)
        except ValueError as exc:
            self.query_one("#count-error", Static).update(str(exc))
            return
        self.dismiss((count,))
