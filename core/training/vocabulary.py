"""A character vocabulary from a training split, and the BERT tokenizer over it.

Chinese encoders read one token per character. The built-in models take their
vocabulary from the characters of the TRAIN split alone (so dev and test stay unseen),
keep those seen at least ``min_frequency`` times, and always include the half-width
digits and Latin letters. Runs of non-Chinese characters ("151", "iPhone") are one
word to BERT's pre-tokenizer, so every non-Chinese character also gets a ``##``
continuation entry: "151" becomes 1 ##5 ##1, never a single [UNK].
"""

from __future__ import annotations

import string
import unicodedata
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
ALWAYS_INCLUDED: tuple[str, ...] = tuple(string.digits + string.ascii_letters)
"""Half-width digits and letters: in the vocabulary whatever their count."""


def is_chinese_char(char: str) -> bool:
    """The code-point ranges BERT's pre-tokenizer splits into single characters."""
    cp = ord(char)
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0xF900 <= cp <= 0xFAFF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2CEAF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def _usable(char: str) -> bool:
    """Not whitespace, control, format or private-use: the tokenizer drops or cannot use those."""
    return unicodedata.category(char)[0] not in ("Z", "C") and not char.isspace()


def build_vocabulary(texts: Iterable[Iterable[str]], *, min_frequency: int = 1) -> list[str]:
    """Special tokens, half-width letters and digits, then characters by frequency.

    ``texts`` yields strings or token sequences (each token one character; longer
    tokens are split into characters). Order is deterministic: specials, the always-
    included characters, the rest by descending count then code point, and last the
    ``##`` continuation entries of every non-Chinese character.
    """
    counts: Counter[str] = Counter()
    for text in texts:
        for token in text:
            counts.update(token)
    chars = [c for c in ALWAYS_INCLUDED]
    seen = set(chars)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    for char, count in ranked:
        if count >= min_frequency and char not in seen and _usable(char):
            chars.append(char)
            seen.add(char)
    continuations = [f"##{c}" for c in chars if not is_chinese_char(c)]
    return [*SPECIAL_TOKENS, *chars, *continuations]


def build_tokenizer(vocabulary: list[str], *, max_seq_len: int) -> Any:
    """A BERT char tokenizer (cased, Chinese characters split) over ``vocabulary``."""
    from transformers import BertTokenizerFast

    if list(vocabulary[: len(SPECIAL_TOKENS)]) != list(SPECIAL_TOKENS):
        raise ValueError(f"a vocabulary must start with {SPECIAL_TOKENS}")
    return BertTokenizerFast(
        vocab={token: i for i, token in enumerate(vocabulary)},
        do_lower_case=False,
        tokenize_chinese_chars=True,
        strip_accents=None,
        model_max_length=max_seq_len,
    )


def write_vocabulary(vocabulary: list[str], directory: Path) -> Path:
    """``vocab.txt`` beside ``tokenizer.json``: one token per line, id = line number."""
    path = directory / "vocab.txt"
    path.write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
    return path
