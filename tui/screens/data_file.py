"""Picking the operator's own data file: a path with completion, a folder tree, and
what the file holds, found from its content before anything runs.

The format (BIO, TSV or XNLI-style) is detected, not asked: an operator with a file
from a colleague rarely knows which words Kiln uses for it. The task the file holds is
set beside the model's, so a sentence-pair file offered to a single-text classifier is
seen here, not after a run has started. Detection reads the file in a thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.suggester import Suggester
from textual.widgets import Button, DirectoryTree, Input, Static

from kiln_lab.tui.screens.modals import UseOrCancelScreen
from kiln_lab.tui.widgets.setup_panel import DataFile

DETECT_DELAY_S = 0.25
"""Typing pauses this long before the file is read (no read per key press)."""


class PathSuggester(Suggester):
    """Completes a path from the file system: the first entry that starts with what is typed."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        typed = Path(value).expanduser()
        folder, stem = (typed, "") if value.endswith("/") else (typed.parent, typed.name)
        try:
            names = sorted(
                entry.name + ("/" if entry.is_dir() else "")
                for entry in folder.iterdir()
                if entry.name.startswith(stem) and not entry.name.startswith(".")
            )
        except OSError:
            return None
        if not names or names[0] == stem:
            return None
        return value + names[0][len(stem) :]


class DataTree(DirectoryTree):
    """Folders and files, hidden ones left out."""

    def filter_paths(self, paths: Any) -> Any:
        return [path for path in paths if not path.name.startswith(".")]


class DataFileScreen(UseOrCancelScreen[DataFile]):
    """Dismisses with the chosen :class:`DataFile`, or None when cancelled."""

    AUTO_FOCUS = "#file-path"
    CSS_PATH = Path(__file__).with_name("data_file.tcss")

    def __init__(
        self, *, model: str | None, task: str | None, start: str | None = None, root: Path
    ) -> None:
        super().__init__(classes="modal")
        self.model_name, self.model_task = model, task
        self.start, self.root = start or "", root
        self.found: Any = None
        """The last detection (a ``FileKind``), for the path now in the box."""

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="file-dialog") as dialog:
            dialog.border_title = "Your data file"
            yield Static(
                "A BIO, TSV or XNLI-style file: type its path (→ completes) or pick it below. "
                "Its format is found from its content.",
                id="file-help",
            )
            yield Input(
                value=self.start,
                placeholder="path to a data file",
                suggester=PathSuggester(),
                id="file-path",
            )
            yield DataTree(self.root, id="file-tree")
            yield Static(id="file-kind")
            with Horizontal(classes="buttons"):
                yield Button("Use this file", id="use", variant="primary", disabled=True)
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self._detect_soon()

    # -- detection --------------------------------------------------------------------------
    @on(Input.Changed, "#file-path")
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        self.found = None
        self.query_one("#use", Button).disabled = True
        self._detect_soon()

    def _detect_soon(self) -> None:
        timer = getattr(self, "_timer", None)
        if timer is not None:
            timer.stop()
        self._timer = self.set_timer(DETECT_DELAY_S, self._detect_now)

    def _detect_now(self) -> None:
        value = self.query_one("#file-path", Input).value.strip()
        if not value:
            self._show(Text("no file chosen", style="dim"), None)
            return
        self._show(Text("reading…", style="dim"), None)
        self._detect(value)

    @work(thread=True, exclusive=True, group="detect", exit_on_error=False)
    def _detect(self, value: str) -> None:
        from kiln_lab.core.data.detect import TASK_MODEL, detect
        from kiln_lab.core.errors import KilnError

        path = Path(value).expanduser()
        if not path.is_file():
            what = "a folder" if path.is_dir() else "no such file"
            self.app.call_from_thread(self._show, Text(what, style="yellow"), None, value)
            return
        try:
            kind = detect(path)
        except KilnError as exc:
            self.app.call_from_thread(self._show, Text(exc.one_line(), style="red"), None, value)
            return
        text = Text(kind.summary, style="red" if kind.problem or not kind.format else "")
        if kind.format and not kind.problem and self.model_task and kind.task != self.model_task:
            text.append(
                f"\nthis file holds {kind.holds} but {self.model_name} is "
                f"{TASK_MODEL.get(self.model_task, self.model_task)}",
                style="red",
            )
            kind = None
        elif kind.format and not kind.problem:
            text.append(f"\nfits {self.model_name}", style="green")
        else:
            kind = None
        self.app.call_from_thread(self._show, text, kind, value)

    def _show(self, text: Text, kind: Any, value: str | None = None) -> None:
        if value is not None and value != self.query_one("#file-path", Input).value.strip():
            return  # an answer for a path no longer in the box
        self.found = kind
        self.query_one("#file-kind", Static).update(text)
        self.query_one("#use", Button).disabled = kind is None

    # -- choosing ---------------------------------------------------------------------------
    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        path_input = self.query_one("#file-path", Input)
        path_input.value = str(event.path)
        path_input.focus()

    @on(Input.Submitted, "#file-path")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_use()

    def action_use(self) -> None:
        kind = self.found
        if kind is None:
            self.notify("choose a file Kiln can read for this model first", severity="warning")
            return
        self.dismiss(DataFile(str(Path(kind.path).resolve()), kind.format))
