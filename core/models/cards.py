"""Model cards: what a model is, where its weights come from, and what it should score.

A card is YAML under ``assets/cards/`` (or any path an operator passes). It names
the family, the task, the label set, the sequence length, a default dataset, where
the weights may be found, and the figures the seed recipes published, so every run
can be compared with them.
"""

from __future__ import annotations

import difflib
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, StrictBool, field_validator, model_validator

from kiln_lab.core.configfile import FrozenConfig, find_config, load_config
from kiln_lab.core.models.families import FAMILIES
from kiln_lab.core.paths import assets_dir

MetricName = Literal[
    "entity_f1", "entity_precision", "entity_recall", "token_accuracy", "accuracy", "macro_f1"
]


class Weights(FrozenConfig):
    """Where a card's weights may be found; Kiln never downloads, it only looks."""

    source: Literal["builtin", "local", "hf-cache"]
    """builtin: shipped under assets/models; local: a Hugging Face directory on disk;
    hf-cache: a repo id looked up in the local Hugging Face cache (never fetched)."""
    path: str | None = None
    """Directory (builtin: relative to assets/models; local: absolute or ~-relative)."""
    repo_id: str | None = None
    """Hugging Face repo id of a fine-tuned checkpoint, for the cache lookup."""

    @model_validator(mode="after")
    def _needs_a_location(self) -> Weights:
        if self.source in ("builtin", "local") and not self.path:
            raise ValueError(f"weights.source '{self.source}' needs weights.path")
        if self.source == "hf-cache" and not self.repo_id:
            raise ValueError("weights.source 'hf-cache' needs weights.repo_id")
        return self


class Architecture(FrozenConfig):
    """The checkpoint's shape, so a performance-only run can build it with random weights."""

    hidden_size: int = Field(gt=0)
    num_layers: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    tokenizer: Literal["cjk-chars", "xlm-r-sentencepiece", "english-wordpiece"] = "cjk-chars"
    """Stand-in tokenizer for performance-only runs: it sets realistic sequence lengths."""


class ReferenceFigure(FrozenConfig):
    """A published figure to compare with: the seed recipes' own numbers."""

    metric: MetricName
    value: float
    precision: str = "fp32"
    """Precision the figure was measured at (fp32, fp16, int8)."""
    runtime: str = ""
    """What produced it, e.g. 'PyTorch', 'TorchScript', 'VastAI vacc'."""
    source: str
    """Where it was published (recipe or paper)."""
    note: str = ""
    dataset: str | None = None
    """``dataset:split`` the figure was measured on, when that is data Kiln has (a built-in
    model's test split); None for a vendor's or a paper's own split. A run's delta
    against the figure is shown only when it evaluated that same data, in full."""
    per_language: dict[str, float] | None = None
    """The same figure per language, where the source publishes a breakdown (XNLI's
    15 languages); runs on data with a language column show it beside their own."""


class ModelCard(FrozenConfig):
    """A model Kiln can build: identity, task, labels, weights and reference figures."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    title: str
    family: str
    task: Literal["token-classification", "sequence-classification", "sentence-pair-classification"]
    labels: tuple[str, ...] = Field(min_length=2)
    max_seq_len: int = Field(ge=8, le=4096)
    default_dataset: str
    weights: Weights
    description: str = ""
    languages: tuple[str, ...] = ()
    reference: tuple[ReferenceFigure, ...] = ()
    architecture: Architecture | None = None
    """Needed only for performance-only runs of a card whose weights are absent."""
    training: dict[str, Any] | None = None
    """For built-in models: how Kiln trained them (command, seed, data hashes, figures)."""
    trust_remote_code: StrictBool = False
    """Run the checkpoint's own Python code. Off unless a card opts in explicitly: only a
    YAML boolean ``true`` counts (``"yes"`` or ``1`` are refused, not read as true)."""
    card_path: str | None = Field(default=None, exclude=True)

    @field_validator("family")
    @classmethod
    def _known_family(cls, value: str) -> str:
        if value not in FAMILIES:
            close = difflib.get_close_matches(value, FAMILIES, n=1)
            maybe = f" (did you mean '{close[0]}'?)" if close else ""
            raise ValueError(f"unknown family {value!r}{maybe}; known: {', '.join(FAMILIES)}")
        return value

    @field_validator("labels")
    @classmethod
    def _unique_labels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("labels must be unique")
        return value

    @cached_property
    def primary_metric(self) -> str:
        return "entity_f1" if self.task == "token-classification" else "accuracy"

    def reference_for(self, metric: str, precision: str = "fp32") -> ReferenceFigure | None:
        for figure in self.reference:
            if figure.metric == metric and figure.precision == precision:
                return figure
        return None

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "family": self.family,
            "task": self.task,
            "labels": list(self.labels),
            "max_seq_len": self.max_seq_len,
            "default_dataset": self.default_dataset,
            "weights": self.weights.model_dump(),
            "reference": [r.model_dump() for r in self.reference],
            "trust_remote_code": self.trust_remote_code,
        }


def cards_dir() -> Path:
    return assets_dir() / "cards"


def user_cards_dir() -> Path | None:
    """``KILN_HOME/cards``: cards an operator added (``kiln models add``), never the
    checkout's. None when KILN_HOME cannot be used (listings then show the built-ins)."""
    from kiln_lab.core.errors import KilnError
    from kiln_lab.core.paths import kiln_home

    try:
        return kiln_home() / "cards"
    except KilnError:
        return None


def card_dirs() -> list[Path]:
    """Where cards are found by name, in order: the built-ins win a name clash."""
    user = user_cards_dir()
    return [cards_dir(), *([user] if user is not None else [])]


def is_user_card(card: ModelCard) -> bool:
    """Whether the card was added by the operator (it lives under KILN_HOME)."""
    user = user_cards_dir()
    return bool(card.card_path and user and Path(card.card_path).parent == user.resolve())


def load_card_file(path: Path | str) -> ModelCard:
    card = load_config(path, ModelCard)
    return card.model_copy(update={"card_path": str(Path(path).resolve())})


def list_cards() -> list[ModelCard]:
    """Every built-in card, then the operator's own (a broken one raises with its file
    name); a user card named like a built-in is left out, as ``get_card`` never finds it."""
    cards = [load_card_file(p) for p in sorted(cards_dir().glob("*.yaml"))]
    user = user_cards_dir()
    if user is not None and user.is_dir():
        names = {card.name for card in cards}
        for path in sorted(user.glob("*.yaml")):
            card = load_card_file(path)
            if card.name not in names:
                cards.append(card)
    return cards


def find_card(name_or_path: str) -> ModelCard:
    """A card by name (built-in, then the operator's) or by path to a card file.

    ``kiln_lab.core.models.get_card`` also takes a model directory; this does not.
    """
    from kiln_lab.core.errors import ConfigError

    try:
        found = find_config(name_or_path, card_dirs(), "model card", "kiln models")
    except ConfigError as exc:
        exc.hint = (
            f"{exc.hint}; or give a Hugging Face model directory (--model DIR), or add "
            "one by name with `kiln models add DIR`"
        )
        raise
    return load_card_file(found)
