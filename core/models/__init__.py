"""Model cards, family specs and weight loading."""

from kiln_lab.core.models.cards import ModelCard, list_cards, load_card_file
from kiln_lab.core.models.families import FAMILIES, FamilySpec, get_family
from kiln_lab.core.models.loading import LoadedModel, load_model, locate_weights
from kiln_lab.core.models.lookup import get_card

__all__ = [
    "FAMILIES",
    "FamilySpec",
    "LoadedModel",
    "ModelCard",
    "get_card",
    "get_family",
    "list_cards",
    "load_card_file",
    "load_model",
    "locate_weights",
]
