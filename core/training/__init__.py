"""Training Kiln's built-in models from scratch (``kiln finetune``).

Recipes name everything a shipped model needs; ``train`` runs one, keeps the best epoch
on dev, reports test, saves a Hugging Face directory and writes the model card.
"""

from core.training.batches import epoch_order
from core.training.evaluation import evaluate
from core.training.loop import TrainingProgress, TrainingReport, train
from core.training.recipes import RECIPES, Recipe, get_recipe
from core.training.vocabulary import SPECIAL_TOKENS, build_tokenizer, build_vocabulary

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
