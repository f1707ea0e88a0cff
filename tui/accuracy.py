"""What the accuracy pane shows: the run's figures beside its fp32 reference run and the
card's published figure, as rows of plain values (no Textual, unit-tested)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kiln_lab.core.baseline import fp32_baseline
from kiln_lab.core.result import AccuracyMetrics, RunResult
from kiln_lab.tui.state import RunView


# -- references: the fp32 run and the card's published figure -------------------------------
def fp32_reference(
    records: Sequence[Any],
    *,
    model: str,
    dataset: tuple[str, str] | None,
    examples: int | None = None,
    exclude: str | None = None,
) -> Any | None:
    """The accuracy pane's reference: the run's fp32 baseline (:mod:`kiln_lab.core.baseline`,
    the rule ``kiln report`` uses too) among ``records``, newest first."""
    return fp32_baseline(records, model=model, dataset=dataset, examples=examples, exclude=exclude)


def published_figure(
    references: Iterable[Any], metric: str, data: str | None = None
) -> tuple[float, str, bool] | None:
    """The card's figure for ``metric`` (fp32 preferred) as ``(value, label, comparable)``:
    ``comparable`` when it was measured on ``data`` (``dataset:split``), the run's own."""
    candidates = []
    for ref in references:
        get = ref.get if isinstance(ref, dict) else (lambda k, r=ref: getattr(r, k, None))
        if get("metric") == metric and get("value") is not None:
            candidates.append(
                (
                    get("precision") != "fp32",
                    float(get("value")),
                    f"{get('precision') or ''} {get('runtime') or ''}".strip(),
                    bool(data) and get("dataset") == data,
                )
            )
    if not candidates:
        return None
    candidates.sort(key=lambda c: (not c[3], c[0]))
    _, value, label, comparable = candidates[0]
    return value, label, comparable


# -- what the accuracy pane shows --------------------------------------------------------------
NER_ROWS = (
    ("entity_f1", "entity F1"),
    ("entity_precision", "precision"),
    ("entity_recall", "recall"),
    ("token_accuracy", "token acc"),
)
CLASSIFICATION_ROWS = (("accuracy", "accuracy"), ("macro_f1", "macro-F1"))


@dataclass(frozen=True)
class FigureRow:
    """One line of the accuracy pane: live value, the fp32 run's, the card's, and Δ."""

    metric: str
    label: str
    live: float | None
    reference: float | None
    card: float | None
    card_comparable: bool = True
    """The card's figure was measured on this run's data, in full: a delta means something."""
    interval: tuple[float, float] | None = None
    """The interval to show beside ``live`` (see ``AccuracyMetrics.interval``)."""

    @property
    def delta(self) -> float | None:
        """Live minus the fp32 reference run, or minus the card when there is no such run
        and the card's figure was measured on the same data."""
        if self.live is None:
            return None
        if self.reference is not None:
            return self.live - self.reference
        if self.card is not None and self.card_comparable:
            return self.live - self.card
        return None


@dataclass(frozen=True)
class AccuracyTable:
    task: str
    """ner, classification or unknown (nothing scored yet and no card to say)."""
    rows: tuple[FigureRow, ...]
    per_label: tuple[tuple[str, float, float, float, int], ...]
    """(label, f1, precision, recall, support) for each entity type or class."""
    reference_run: str | None
    delta_basis: str
    """'fp32 run', 'card' or '' (no basis)."""
    scored: int | None
    """Sentences or samples scored so far."""
    perf_only: bool
    final: bool
    skipped: str | None = None
    """Why the evaluate stage did not run (a benchmark-only run, a device-only artifact)."""
    truncated_tokens: int | None = None
    """NER: tokens past the sequence length, left out of token accuracy."""
    state: str = "live"
    """``live``, ``final`` (every example scored), ``stopped`` (``--until``), ``limited``
    (``--limit``) or ``partial`` (cancelled or failed mid-way): only ``final`` is final."""
    confidence: float | None = None
    interval_method: str | None = None
    """How the headline interval was made: a confidence sequence while running, the
    bootstrap or Wilson interval once complete, the split sequence of an early stop."""
    per_label_intervals: tuple[tuple[float, float] | None, ...] = ()
    """The F1 interval of each ``per_label`` row (NER), where the run has them."""
    per_language: tuple[tuple[str, float, float | None, int, float | None], ...] = ()
    """Sentence pairs with a language column: (language, accuracy, interval half width,
    examples, the card's published figure for that language or None)."""


def accuracy_table(
    view: RunView,
    *,
    task: str | None = None,
    reference: Any | None = None,
    card_references: Iterable[Any] = (),
) -> AccuracyTable:
    """Everything the accuracy pane draws, from the latest snapshot and the references."""
    live = view.accuracy or {}
    if task is None:
        task = (
            "ner" if "entity_f1" in live else "classification" if "accuracy" in live else "unknown"
        )
    ref_metrics = RunResult.from_dict(reference.result).metrics if reference else None
    card_refs: list[Any] = list(card_references)
    if not card_refs and view.result is not None:
        card_refs = list(view.result.references)
    spec = NER_ROWS if task == "ner" else CLASSIFICATION_ROWS if task == "classification" else ()
    figures = AccuracyMetrics.from_dict(live)
    state = figure_state(view, live)
    key = view.dataset_key()
    data = f"{key[0]}:{key[1]}" if key else None
    rows = []
    for metric, label in spec:
        card = published_figure(card_refs, metric, data)
        interval = figures.interval(metric)
        rows.append(
            FigureRow(
                metric,
                label,
                _num(live.get(metric)),
                _num(ref_metrics.value(metric)) if ref_metrics is not None else None,
                card[0] if card else None,
                card_comparable=bool(card and card[2]) and state in ("final", "live"),
                interval=(float(interval["low"]), float(interval["high"])) if interval else None,
            )
        )
    per = live.get("per_type") or live.get("per_class") or {}
    per_label = tuple(
        (
            str(name),
            float(score.get("f1", 0.0)),
            float(score.get("precision", 0.0)),
            float(score.get("recall", 0.0)),
            int(score.get("support", 0)),
        )
        for name, score in sorted(per.items())
        if isinstance(score, dict)
    )
    basis = ""
    if any(r.reference is not None for r in rows):
        basis = "fp32 run"
    elif any(r.card is not None for r in rows):
        basis = "card"
    per_type_intervals = (
        (figures.intervals or {}).get("per_type")
        or (figures.intervals or {}).get("per_class")
        or {}
    )
    label_intervals = tuple(
        (float(iv["f1"]["low"]), float(iv["f1"]["high"]))
        if isinstance(iv := per_type_intervals.get(name), dict) and "f1" in iv
        else None
        for name, *_ in per_label
    )
    headline = figures.interval(spec[0][0]) if spec else None
    published = next(filter(None, map(_per_language_figures, card_refs)), {})
    languages = tuple(
        (
            str(name),
            float(row.get("accuracy", 0.0)),
            (float(row["interval"]["high"]) - float(row["interval"]["low"])) / 2
            if isinstance(row.get("interval"), dict)
            else None,
            int(row.get("count", 0)),
            _num(published.get(name)),
        )
        for name, row in sorted((figures.per_language or {}).items())
        if isinstance(row, dict)
    )
    scored = live.get("sentences", live.get("count"))
    evaluate = view.stages.get("evaluate")
    return AccuracyTable(
        task=task,
        rows=tuple(rows),
        per_label=per_label,
        reference_run=reference.id if reference is not None else None,
        delta_basis=basis,
        scored=int(scored) if isinstance(scored, int | float) else None,
        perf_only=view.perf_only,
        final=bool(live.get("final")) or view.is_finished,
        skipped=evaluate.reason if evaluate is not None and evaluate.status == "skipped" else None,
        truncated_tokens=int(cut) if isinstance(cut := live.get("truncated_tokens"), int) else None,
        state=state,
        confidence=figures.confidence,
        interval_method=str(headline.get("method")) if headline else None,
        per_label_intervals=label_intervals,
        per_language=languages,
    )


def _per_language_figures(ref: Any) -> dict[str, float] | None:
    """A card figure's per-language breakdown (a card's dict or a result's part)."""
    return ref.get("per_language") if isinstance(ref, dict) else getattr(ref, "per_language", None)


def figure_state(view: RunView, live: dict[str, Any]) -> str:
    """What the figures are: ``final`` only for an evaluation that scored every example
    of the whole split; a limited, stopped, cancelled or failed one says which."""
    if not view.is_finished and not live.get("final"):
        return "live"
    if live.get("early_stop"):
        return "stopped"
    complete = live.get("complete")
    if complete is False or (complete is None and view.status != "succeeded"):
        return "partial"
    if view.config.get("limit"):
        return "limited"
    return "final"


def task_of(card_task: str | None) -> str | None:
    if card_task is None:
        return None
    return "ner" if card_task == "token-classification" else "classification"


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


Clock = Callable[[], float]
