"""The pickers: model, dataset, profile, precision, batch size, sequence length, examples.

One widget draws every picker as a row (a screen of seven dropdowns would cost dozens
of widgets and a slower first frame). Keys: up/down choose the row, left/right step
through its values, enter (or a click) opens the full list with what each choice means.
Each picker offers only what applies (a profile's precisions, sequence lengths up to
the card's maximum, the built-in datasets of the model's task) and says plainly what
a choice implies: a model without weights runs performance-only, an unavailable
profile shows its reason and fix. The data picker ends with "your file…", which opens
the file picker; the examples picker opens a box for any count.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget

from kiln_lab.tui.catalogue import Catalogue, Selection
from kiln_lab.tui.messages import SelectionChanged

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128)
SEQ_LENS = (32, 64, 128, 256, 512)
LIMITS = (50, 200, 1000, 5000)
LABEL_WIDTH = 10


@dataclass(frozen=True)
class Choice:
    """One value of a picker: what the row shows, what the list says, the value."""

    label: Text
    value: Any
    detail: str = ""


@dataclass(frozen=True)
class DataFile:
    """The operator's own data file, as a value of the data picker."""

    path: str
    format: str | None


BROWSE = DataFile("", None)
"""The data picker's last entry: it opens the file picker instead of choosing."""


@dataclass(frozen=True)
class AddModel:
    """The model picker's last entry: it opens the "Add a model" dialog."""


ADD_MODEL = AddModel()


@dataclass(frozen=True)
class Picker:
    key: str
    """The Selection field it sets."""
    label: str


PICKERS = (
    Picker("model", "model"),
    Picker("dataset", "data"),
    Picker("profile", "profile"),
    Picker("precision", "precision"),
    Picker("batch_size", "batch"),
    Picker("seq_len", "seq len"),
    Picker("limit", "examples"),
)


def choices(key: str, catalogue: Catalogue, selection: Selection) -> list[Choice]:
    """What picker ``key`` offers, given the rest of the selection."""
    model = catalogue.model(selection.model)
    profile = catalogue.profile(selection.profile)
    if key == "model":
        out = []
        for entry in catalogue.models:
            label = Text(entry.name)
            if entry.weights is None:
                label.append(" perf-only", style="yellow")
            weights = "weights found" if entry.weights else "no weights: performance-only"
            out.append(
                Choice(label, entry.name, f"{entry.family} · {entry.task_short} · {weights}")
            )
        out.append(
            Choice(
                Text("add a model…", style="italic"),
                ADD_MODEL,
                "a Hugging Face directory of your own: its card is read off it and checked",
            )
        )
        return out
    if key == "dataset":
        default = model.default_dataset if model else "the card's"
        out = [Choice(Text(f"{default} (card)"), None, "the model card's default dataset")]
        out += [
            Choice(Text(name), name, description)
            for name, description in catalogue.datasets_for(model.task if model else None)
            if name != default
        ]
        if selection.dataset_file:
            chosen = value_of(selection, "dataset")
            label = Text(Path(selection.dataset_file).name)
            label.append(f" ({selection.dataset_format})", style="dim")
            out.append(Choice(label, chosen, selection.dataset_file))
        out.append(
            Choice(
                Text("your file…", style="italic"),
                BROWSE,
                "pick a data file (BIO, TSV or XNLI-style); its format is found from its content",
            )
        )
        return out
    if key == "profile":
        out = []
        for entry in catalogue.profiles:
            label = Text(entry.name)
            if entry.available is False:
                label.append(" unavailable", style="red")
                detail = f"unavailable: {entry.reason}" + (
                    f" (fix: {entry.fix})" if entry.fix else ""
                )
            elif entry.available is None:
                label.append(" checking…", style="dim")
                detail = f"{entry.title} · checking whether it can run here"
            else:
                detail = f"{entry.title} · {', '.join(entry.precisions)}"
            out.append(Choice(label, entry.name, detail))
        return out
    if key == "precision":
        offered = profile.precisions if profile else ("fp32",)
        return [Choice(Text(p), p, "offered by the profile") for p in offered]
    if key == "batch_size":
        default = profile.batch_size if profile else 32
        # At most: ONNX Runtime on the CPU cuts batches where sentence lengths jump. Said
        # once, on the first row: under every number it doubled the list's height.
        return [
            Choice(
                Text(f"{default} (profile)"),
                None,
                "the profile's default; each is the most examples a batch holds",
            )
        ] + [Choice(Text(str(b)), b) for b in BATCH_SIZES]
    if key == "seq_len":
        longest = model.max_seq_len if model else 512
        default = (profile.seq_len if profile else None) or longest
        return [Choice(Text(f"{default} (default)"), None, "the profile's, else the card's")] + [
            Choice(Text(str(s)), s) for s in SEQ_LENS if s <= longest
        ]
    if key == "limit":
        counts = sorted({*LIMITS, selection.limit} - {None})
        return [Choice(Text("all (test split)"), None, "score the whole split")] + [
            Choice(Text(f"first {n:,}"), n, "a quick look" if n in LIMITS else "your count")
            for n in counts
        ]
    return []


def value_of(selection: Selection, key: str) -> Any:
    """The value picker ``key`` shows for ``selection`` (a :class:`DataFile` for a file)."""
    if key == "dataset" and selection.dataset_file:
        return DataFile(selection.dataset_file, selection.dataset_format)
    return getattr(selection, key)


def assign(selection: Selection, key: str, value: Any) -> Selection:
    """``selection`` with picker ``key`` set to ``value`` (a file clears the dataset)."""
    if key != "dataset":
        return selection.with_(**{key: value})
    if isinstance(value, DataFile):
        return selection.with_(dataset=None, dataset_file=value.path, dataset_format=value.format)
    return selection.with_(dataset=value, dataset_file=None, dataset_format=None)


def conform(catalogue: Catalogue, selection: Selection) -> Selection:
    """The selection with every value one its picker offers (else the picker's first)."""
    for picker in PICKERS:
        offered = [c.value for c in choices(picker.key, catalogue, selection)]
        if offered and value_of(selection, picker.key) not in offered:
            selection = assign(selection, picker.key, offered[0])
    return selection


class SetupPanel(Widget, can_focus=True):
    """Pickers for the next run; posts :class:`SelectionChanged` whenever one changes."""

    BINDINGS = [
        Binding("up,k", "move(-1)", "Previous", show=False),
        Binding("down,j", "move(1)", "Next", show=False),
        Binding("left", "step(-1)", "Previous value", show=False),
        Binding("right", "step(1)", "Next value", show=False),
        Binding("enter,space", "open", "Choose", show=False),
    ]

    DEFAULT_CSS = """
    SetupPanel { height: auto; }
    """

    class ListRequested(Message):
        """The operator wants the full list for one picker (enter or a click)."""

        def __init__(self, panel: SetupPanel, picker: Picker, options: list[Choice]) -> None:
            super().__init__()
            self.panel, self.picker, self.options = panel, picker, options

    class FileRequested(Message):
        """The operator wants to pick a data file of their own."""

        def __init__(self, panel: SetupPanel) -> None:
            super().__init__()
            self.panel = panel

    class ModelAddRequested(Message):
        """The operator wants to add a model directory of their own."""

        def __init__(self, panel: SetupPanel) -> None:
            super().__init__()
            self.panel = panel

    class CountRequested(Message):
        """The operator wants to type how many examples to score."""

        def __init__(self, panel: SetupPanel) -> None:
            super().__init__()
            self.panel = panel

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Run setup"
        self.catalogue: Catalogue | None = None
        self.selection = Selection()
        self.row = 0

    # -- state ------------------------------------------------------------------------------
    def load(self, catalogue: Catalogue, selection: Selection) -> None:
        self.catalogue = catalogue
        self.apply(selection)

    def apply(self, selection: Selection) -> None:
        """Show ``selection`` (values a picker does not offer fall back to its first)."""
        if self.catalogue is not None:
            selection = conform(self.catalogue, selection)
        self.selection = selection
        self.refresh(layout=True)

    def options(self, key: str) -> list[Choice]:
        if self.catalogue is None:
            return []
        return choices(key, self.catalogue, self.selection)

    def set_value(self, key: str, value: Any) -> None:
        if value is BROWSE:
            self.post_message(self.FileRequested(self))
            return
        if value is ADD_MODEL:
            self.post_message(self.ModelAddRequested(self))
            return
        selection = assign(self.selection, key, value)
        if key == "model" and value != self.selection.model:
            selection = selection.with_(
                dataset=None, dataset_file=None, dataset_format=None, seq_len=None
            )
        self.apply(selection)
        self.post_message(SelectionChanged(self.selection))

    # -- keys and mouse ---------------------------------------------------------------------
    def action_move(self, delta: int) -> None:
        self.row = (self.row + delta) % len(PICKERS)
        self.refresh()

    def action_step(self, delta: int) -> None:
        picker = PICKERS[self.row]
        offered = [c.value for c in self.options(picker.key) if c.value not in (BROWSE, ADD_MODEL)]
        if not offered:
            return
        current = value_of(self.selection, picker.key)
        index = offered.index(current) if current in offered else 0
        self.set_value(picker.key, offered[(index + delta) % len(offered)])

    def action_open(self) -> None:
        picker = PICKERS[self.row]
        if picker.key == "limit" and self.catalogue is not None:
            self.post_message(self.CountRequested(self))
            return
        options = self.options(picker.key)
        if options:
            self.post_message(self.ListRequested(self, picker, options))

    def on_click(self, event: events.Click) -> None:
        y = event.get_content_offset(self)
        if y is not None and 0 <= y.y < len(PICKERS):
            self.row = y.y
            self.action_open()

    # -- drawing ----------------------------------------------------------------------------
    def render(self) -> Text:
        width = self.content_size.width or 30
        lines = []
        for index, picker in enumerate(PICKERS):
            line = Text(no_wrap=True, overflow="ellipsis")
            line.append(f"{picker.label:<{LABEL_WIDTH}}", style="dim")
            label = self._current_label(picker)
            cursor = index == self.row and self.has_focus
            line.append_text(label)
            line.truncate(max(1, width - 2), overflow="ellipsis", pad=True)
            line.append(" ▸" if cursor else "  ", style="bold")
            if cursor:
                line.stylize("reverse")
            lines.append(line)
        lines.append(self._detail())
        return Text("\n").join(lines)

    def _current_label(self, picker: Picker) -> Text:
        if self.catalogue is None:
            return Text("loading…", style="dim")
        value = value_of(self.selection, picker.key)
        for choice in self.options(picker.key):
            if choice.value == value:
                return choice.label.copy()
        return Text(str(value) if value is not None else "—", style="dim")

    def _detail(self) -> Text:
        text = Text(no_wrap=False)
        catalogue = self.catalogue
        if catalogue is None:
            text.append("reading model cards and profiles…", style="dim")
            return text
        model = catalogue.model(self.selection.model)
        profile = catalogue.profile(self.selection.profile)
        if model is not None:
            text.append(f"{model.family} · {model.task_short} · ", style="dim")
            if model.weights:
                text.append("weights found", style="green")
            else:
                text.append("perf-only (no weights)", style="yellow")
        if profile is not None:
            text.append("\n")
            if profile.available is None:
                text.append(f"{profile.title} · checking…", style="dim")
            elif profile.available:
                text.append(profile.title, style="dim")
            else:
                text.append(f"unavailable: {profile.reason}", style="red")
                if profile.fix:
                    text.append(f" (fix: {profile.fix})", style="dim")
        for problem in catalogue.problems:
            text.append(f"\n{problem.get('title')}: {problem.get('message')}", style="red")
        return text

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
