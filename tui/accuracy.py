"""What the accuracy pane shows: the run's figures beside its fp32 reference run and the
card's published figure, as rows of plain values (no Textual, unit-tested)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kiln_lab.core.baseline import fp32_baseline
from kiln_lab.core.result import RunResult
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


def published_figure(references: Iterable[Any], metric: str) -> tuple[float, str] | None:
    """The card's figure for ``metric`` (fp32 preferred) as ``(value, label)``."""
    candidates = []
    for ref in references:
        get = ref.get if isinstance(ref, dict) else (lambda k, r=ref: getattr(r, k, None))
        if get("metric") == metric and get("value") is not None:
            candidates.append(
                (
                    get("precision") != "fp32",
                    float(get("value")),
                    f"{get('precision') or ''} {get('runtime') or ''}".strip(),
                )
            )
    if not candidates:
        return None
    candidates.sort(key=lambda c: c[0])
    _, value, label = candidates[0]
    return value, label


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

    @property
    def delta(self) -> float | None:
        """Live minus the fp32 reference run, or minus the card when there is no such run."""
        if self.live is None:
            return None
        base = self.reference if self.reference is not None else self.card
        return None if base is None else self.live - base


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
    rows = []
    for metric, label in spec:
        card = published_figure(card_refs, metric)
        rows.append(
            FigureRow(
                metric,
                label,
                _num(live.get(metric)),
                _num(ref_metrics.value(metric)) if ref_metrics is not None else None,
                card[0] if card else None,
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
    )


def task_of(card_task: str | None) -> str | None:
    if card_task is None:
        return None
    return "ner" if card_task == "token-classification" else "classification"


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


Clock = Callable[[], float]
