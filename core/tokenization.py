"""One example to token ids: sentences, sentence pairs, or pre-split words (NER).

Every path into a model goes through :func:`encode` (the tokenizer itself, truncation
counted, never silent), so training, evaluation and the per-word cache of
:mod:`kiln_lab.core.word_pieces` agree on what an example's ids are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kiln_lab.core.data import TextExample, TokenExample
from kiln_lab.core.errors import ConfigError


@dataclass(frozen=True)
class Encoded:
    """One example's token ids, plus the token -> word map that NER decoding needs."""

    index: int
    input_ids: np.ndarray
    token_type_ids: np.ndarray | None
    word_ids: tuple[int | None, ...] | None
    words: int
    truncated: bool
    first_positions: np.ndarray | None = None
    """NER: each word's first sub-token position (-1 if truncated away), for decoding."""

    @property
    def length(self) -> int:
        return int(self.input_ids.shape[0])


def _require_room(tokenizer: Any, seq_len: int, *, pair: bool) -> None:
    """Refuse a length that leaves no room for a token after the special tokens.

    Below that, Hugging Face tokenizers log an error and do not truncate at all, so the
    run would be recorded at ``seq_len`` while the model saw whole sentences.
    """
    special = int(tokenizer.num_special_tokens_to_add(pair=pair))
    if seq_len <= special:
        raise ConfigError(
            f"sequence length {seq_len} leaves no room for text: the tokenizer adds "
            f"{special} special tokens",
            hint=f"use a sequence length of at least {special + 1}",
        )


def encode(
    examples: Sequence[TokenExample | TextExample], tokenizer: Any, task: str, seq_len: int
) -> list[Encoded]:
    """Tokenise every example (fast tokenizers do the whole list in one call)."""
    if not examples:
        return []
    _require_room(tokenizer, seq_len, pair=any(getattr(ex, "text_pair", None) for ex in examples))
    if task == "token-classification":
        words = [list(ex.tokens) for ex in examples]  # type: ignore[union-attr]
        out = tokenizer(
            words,
            is_split_into_words=True,
            truncation=True,
            max_length=seq_len,
            return_token_type_ids=True,
        )
    else:
        texts = [ex.text for ex in examples]  # type: ignore[union-attr]
        pairs = [ex.text_pair for ex in examples]  # type: ignore[union-attr]
        has_pairs = any(p is not None for p in pairs)
        out = tokenizer(
            texts,
            [p or "" for p in pairs] if has_pairs else None,
            truncation=True,
            max_length=seq_len,
            return_token_type_ids=True,
        )
    encoded: list[Encoded] = []
    for i, ids in enumerate(out["input_ids"]):
        types = out.get("token_type_ids")
        first = None
        if task == "token-classification":
            word_ids = tuple(out.word_ids(i))
            n_words = len(examples[i].tokens)  # type: ignore[union-attr]
            first = np.full(n_words, -1, dtype=np.int64)
            for pos in range(len(word_ids) - 1, -1, -1):
                if word_ids[pos] is not None:
                    first[word_ids[pos]] = pos
            truncated = bool((first < 0).any())
        else:
            word_ids, n_words = None, 0
            truncated = len(ids) >= seq_len
        encoded.append(
            Encoded(
                index=i,
                input_ids=np.asarray(ids, dtype=np.int64),
                token_type_ids=np.asarray(types[i], dtype=np.int64) if types else None,
                word_ids=word_ids,
                words=n_words,
                truncated=truncated,
                first_positions=first,
            )
        )
    return encoded
