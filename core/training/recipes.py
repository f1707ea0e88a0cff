"""Training recipes for Kiln's built-in models, registered by name.

A recipe is everything ``kiln finetune NAME`` needs to reproduce a shipped model: the
family and task, the built-in dataset, the architecture, the optimiser schedule, the
seed and the vocabulary rule. Recipes are frozen and validated on construction;
variants (a one-minute test run, another seed) are made with ``recipe.with_changes``.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any

from kiln_lab.core.errors import ConfigError
from kiln_lab.core.models.families import TASKS, get_family


@dataclass(frozen=True)
class Recipe:
    """How one built-in model is trained from scratch."""

    name: str
    """The model (and card) name, e.g. ``zh-ner-tiny``."""
    title: str
    family: str
    """A registered family: ``bert`` or ``roberta``."""
    task: str
    dataset: str
    """A built-in dataset; its TRAIN split trains, DEV picks the best epoch, TEST is reported."""
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_seq_len: int = 128
    epochs: int = 4
    learning_rate: float = 5e-4
    """Peak learning rate, reached after the warm-up and decayed linearly to zero."""
    warmup_fraction: float = 0.06
    weight_decay: float = 0.01
    batch_size: int = 32
    dropout: float = 0.1
    seed: int = 0
    min_char_frequency: int = 2
    """Characters seen fewer times than this in TRAIN map to [UNK]."""
    bf16_autocast: bool = True
    """Run forward and backward under bf16 autocast (fp32 master weights): about 1.7x
    faster on CPUs with native bf16; the saved weights and all reported figures are fp32."""
    description: str = ""

    def __post_init__(self) -> None:
        get_family(self.family)  # raises with the known names
        if self.task not in TASKS:
            raise ConfigError(f"recipe {self.name}: unknown task {self.task!r}")
        for field in (
            "hidden_size",
            "num_layers",
            "num_heads",
            "intermediate_size",
            "epochs",
            "batch_size",
            "min_char_frequency",
        ):
            if getattr(self, field) < 1:
                raise ConfigError(f"recipe {self.name}: {field} must be at least 1")
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                f"recipe {self.name}: hidden_size {self.hidden_size} is not a multiple of "
                f"num_heads {self.num_heads}"
            )
        if not 8 <= self.max_seq_len <= 4096:
            raise ConfigError(f"recipe {self.name}: max_seq_len must be in 8..4096")
        if self.learning_rate <= 0 or not 0 <= self.warmup_fraction < 1:
            raise ConfigError(
                f"recipe {self.name}: learning_rate must be > 0 and warmup_fraction in [0, 1)"
            )

    def with_changes(self, **changes: Any) -> Recipe:
        """A validated copy with some fields changed (``None`` values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def architecture(self) -> dict[str, int]:
        return {
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "intermediate_size": self.intermediate_size,
        }

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe(
            name="zh-ner-tiny",
            title="Kiln tiny BERT · People's Daily NER (built-in)",
            family="bert",
            task="token-classification",
            dataset="peoples-daily-1998",
            hidden_size=256,
            num_layers=4,
            num_heads=4,
            intermediate_size=1024,
            max_seq_len=128,
            epochs=5,
            learning_rate=5e-4,
            batch_size=32,
            description="A small BERT trained from scratch by `kiln finetune` on the "
            "built-in People's Daily January 1998 split: person, location and organisation "
            "BIO tags, one token per Chinese character, vocabulary from the training "
            "characters. Small enough to ship and to run every stage in seconds.",
        ),
        Recipe(
            name="zh-senti-tiny",
            title="Kiln tiny RoBERTa · shopping-review sentiment (built-in)",
            family="roberta",
            task="sequence-classification",
            dataset="shopping-reviews",
            hidden_size=256,
            num_layers=4,
            num_heads=4,
            intermediate_size=1024,
            max_seq_len=256,
            epochs=5,
            learning_rate=5e-4,
            batch_size=32,
            description="A small RoBERTa trained from scratch by `kiln finetune` on the "
            "built-in shopping-review sentiment split (neg / pos), one token per Chinese "
            "character with a BERT-style character vocabulary (as Chinese RoBERTa models "
            "ship), no token type ids.",
        ),
    )
}


def get_recipe(name: str) -> Recipe:
    """A registered recipe; an unknown name lists the known ones."""
    try:
        return RECIPES[name]
    except KeyError:
        close = difflib.get_close_matches(name, RECIPES, n=1)
        maybe = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(
            f"no training recipe named {name!r}",
            hint=f"{maybe}recipes: {', '.join(sorted(RECIPES))}",
        ) from None
