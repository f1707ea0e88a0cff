"""Training Kiln's built-in models from scratch (``kiln finetune``).

Recipes name everything a shipped model needs; ``train`` runs one, keeps the best epoch
on dev, reports test, saves a Hugging Face directory and writes the model card.
"""

from kiln_lab.core.training.batches import epoch_order
from kiln_lab.core.training.evaluation import evaluate
from kiln_lab.core.training.loop import TrainingProgress, train
from kiln_lab.core.training.recipes import RECIPES, Recipe, get_recipe
from kiln_lab.core.training.record import TrainingReport
from kiln_lab.core.training.vocabulary import SPECIAL_TOKENS, build_tokenizer, build_vocabulary

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
