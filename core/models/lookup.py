"""Finding the card a run names: ``--model`` is a card's name, a card file, or a model
directory whose card is read off it in memory (:mod:`.from_directory`)."""

from __future__ import annotations

from pathlib import Path

from kiln_lab.core.models.cards import ModelCard, find_card
from kiln_lab.core.models.from_directory import card_from_directory


def get_card(name_or_path: str) -> ModelCard:
    """A card by name (built-in, then the operator's), by path to a card file, or read
    off a Hugging Face model directory (``--model DIR``)."""
    if Path(name_or_path).expanduser().is_dir():
        return card_from_directory(name_or_path)
    return find_card(name_or_path)
