"""Live accuracy beside the fp32 reference run and the card's published figure."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from kiln_lab.tui import format as fmt
from kiln_lab.tui.accuracy import AccuracyTable
from kiln_lab.tui.widgets.guard import guarded

COLUMNS = (10, 7, 9, 9, 8)
"""Widths: label, live, fp32 run, delta, card (fixed, so figures line up as they change)."""
STATE_STYLE = {"live": "bold", "final": "bold", "stopped": "bold cyan"}
"""Anything but a live or final figure (limited, partial) is drawn in yellow."""
METHOD_NAMES = {
    "confidence-sequence": "anytime-valid",
    "confidence-sequence-split": "early stop, whole split",
    "bootstrap": "bootstrap over sentences",
    "wilson": "Wilson",
}


def _row(cells: list[Text]) -> Text:
    line = Text(no_wrap=True, overflow="ellipsis")
    for i, (cell, width) in enumerate(zip(cells, COLUMNS, strict=True)):
        pad = max(0, width - cell.cell_len)
        if i == 0:
            line.append_text(cell)
            line.append(" " * pad)
        else:
            line.append(" " * pad)
            line.append_text(cell)
    return line


def render_accuracy(table: AccuracyTable | None, height: int) -> Text:
    if table is None:
        return Text("no run in view", style="dim")
    if table.perf_only:
        return Text(
            "performance-only run (random weights): accuracy is not measured, "
            "only speed. Give the card real weights to score it.",
            style="yellow",
        )
    if table.task == "unknown":
        if table.skipped:
            return Text(f"evaluate skipped: {table.skipped}", style="dim")
        return Text("waiting for the evaluate stage…", style="dim")
    delta_head = {"fp32 run": "Δ run", "card": "Δ card"}.get(table.delta_basis, "Δ")
    lines = [
        _row(
            [
                Text(""),
                Text(table.state, style=STATE_STYLE.get(table.state, "bold yellow")),
                Text("fp32 run", style="dim"),
                Text(delta_head, style="dim"),
                Text("card", style="dim"),
            ]
        )
    ]
    for index, row in enumerate(table.rows):
        strong = "bold" if index == 0 else ""
        lines.append(
            _row(
                [
                    Text(row.label, style=strong),
                    Text(fmt.metric(row.live), style=strong),
                    Text(fmt.metric(row.reference), style="dim"),
                    fmt.delta(row.delta),
                    Text(fmt.metric(row.card), style="dim"),
                ]
            )
        )
    headline = table.rows[0] if table.rows else None
    if headline is not None and headline.interval is not None and height - len(lines) >= 2:
        # The headline figure's interval: while running it narrows as examples arrive.
        low, high = headline.interval
        level = f"{table.confidence:.0%}" if table.confidence else "95%"
        method = METHOD_NAMES.get(table.interval_method or "", table.interval_method or "")
        line = Text(f"{level} [{low:.4f}, {high:.4f}]", no_wrap=True, overflow="ellipsis")
        line.append(f" ±{(high - low) / 2:.4f} {method}", style="dim")
        lines.append(line)
    if table.truncated_tokens and height - len(lines) >= 1:
        # Said where token accuracy is shown: its figure leaves these tokens out.
        lines.append(
            Text(
                f"token acc leaves out {table.truncated_tokens:,} truncated tokens",
                style="yellow",
                no_wrap=True,
                overflow="ellipsis",
            )
        )
    room = height - len(lines) - 1
    if table.per_language and room >= 2:
        # The seed's XNLI table: accuracy per language beside the card's figure.
        lines.append(Text(f"{'language':<10}{'acc':>7}{'±':>7}{'n':>8}{'card':>8}", style="dim"))
        for name, accuracy, spread, count, card in table.per_language[: room - 1]:
            line = Text(f"{name[:10]:<10}{fmt.metric(accuracy, 3):>7}", no_wrap=True)
            line.append(f"{fmt.metric(spread, 3):>7}{count:>8,}", style="dim")
            line.append(f"{fmt.metric(card, 3):>8}", style="dim")
            lines.append(line)
        room = height - len(lines) - 1
    if table.per_label and room >= 2 and not table.per_language:
        spreads = table.per_label_intervals
        head = f"{'':<10}{'F1':>7}{'P':>7}{'R':>7}{'n':>8}" + ("  ±F1" if any(spreads) else "")
        lines.append(Text(head, style="dim"))
        for index, (name, f1, precision, recall, support) in enumerate(table.per_label[: room - 1]):
            line = Text(f"{name[:10]:<10}{fmt.metric(f1, 3):>7}", no_wrap=True)
            line.append(f"{fmt.metric(precision, 3):>7}{fmt.metric(recall, 3):>7}", style="dim")
            line.append(f"{support:>8,}", style="dim")
            spread = spreads[index] if index < len(spreads) else None
            if spread is not None:
                line.append(f"  {(spread[1] - spread[0]) / 2:.3f}", style="dim")
            lines.append(line)
    return Text("\n").join(lines)


class AccuracyPane(Static):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Accuracy"
        self._table: AccuracyTable | None = None

    def show(self, table: AccuracyTable | None) -> None:
        if table == self._table and table is not None:
            return
        self._table = table
        subtitle = ""
        if table is not None and not table.perf_only and table.task != "unknown":
            unit = "sentences" if table.task == "ner" else "samples"
            if table.scored is not None:
                subtitle = f"{table.scored:,} {unit}"
            if table.reference_run:
                subtitle += f" · ref {table.reference_run}"
        self.border_subtitle = subtitle
        self.refresh()

    @guarded
    def render(self) -> Text:
        return render_accuracy(self._table, self.content_size.height or 8)
