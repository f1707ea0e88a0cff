"""Finding the card a run names: ``--model`` is a card's name, a card file, or a model
directory whose card is read off it in memory (:mod:`.from_directory`)."""

from __future__ import annotations

import os
from pathlib import Path

from kiln_lab.core.errors import ConfigError
from kiln_lab.core.models.cards import ModelCard, find_card
from kiln_lab.core.models.from_directory import card_from_directory


def looks_like_a_path(name_or_path: str) -> bool:
    """Written as a path (``./m``, ``~/m``, ``/data/m``, ``runs/m``), not a card's name."""
    return os.sep in name_or_path or name_or_path.startswith(("~", "."))


def get_card(name_or_path: str) -> ModelCard:
    """A card by name (built-in, then the operator's), by path to a card file, or read
    off a Hugging Face model directory (``--model DIR``).

    A directory written as a path is read as one; a bare word is a card's name first,
    so a folder that happens to share a card's name in the current directory never
    hides the card (and its reference figures).
    """
    directory = Path(name_or_path).expanduser()
    if looks_like_a_path(name_or_path) and directory.is_dir():
        return card_from_directory(directory)
    try:
        return find_card(name_or_path)
    except ConfigError:
        if directory.is_dir():
            return card_from_directory(directory)
        raise
