"""Training Kiln's built-in models from scratch (``kiln finetune``).

Recipes name everything a shipped model needs; ``train`` runs one, keeps the best epoch
on dev, reports test, saves a Hugging Face directory and writes the model card.
"""

from importlib import import_module
from typing import Any

# Names load on first use (PEP 562): the CLI builds its parser from the recipe list
# without importing the training loop and its numerics.
_HOMES = {
    "epoch_order": "batches",
    "evaluate": "evaluation",
    "TrainingProgress": "loop",
    "train": "loop",
    "RECIPES": "recipes",
    "Recipe": "recipes",
    "get_recipe": "recipes",
    "TrainingReport": "record",
    "SPECIAL_TOKENS": "vocabulary",
    "build_tokenizer": "vocabulary",
    "build_vocabulary": "vocabulary",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)


__all__ = [
    "RECIPES",
    "SPECIAL_TOKENS",
    "Recipe",
    "TrainingProgress",
    "TrainingReport",
    "build_tokenizer",
    "build_vocabulary",
    "epoch_order",
    "evaluate",
    "get_recipe",
    "train",
]
