"""A per-word token cache for pre-split words, checked against the tokenizer itself."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from kiln_lab.core.data import TokenExample
from kiln_lab.core.tokenization import Encoded, encode

log = logging.getLogger(__name__)


def _same(a: Sequence[Encoded], b: Sequence[Encoded]) -> bool:
    def key(e: Encoded) -> tuple:
        types = None if e.token_type_ids is None else e.token_type_ids.tolist()
        first = None if e.first_positions is None else e.first_positions.tolist()
        return e.index, e.input_ids.tolist(), types, e.word_ids, e.words, e.truncated, first

    return len(a) == len(b) and all(key(x) == key(y) for x, y in zip(a, b, strict=True))


class WordPieces:
    """Each distinct word's sub-token ids, so pre-split words (NER) are tokenised once per
    distinct word instead of once per occurrence.

    Chinese NER data is one word per character: the built-in test split has 184k
    characters but a few thousand distinct ones, and tokenising every occurrence cost a
    third of the small model's evaluation. The shortcut is exact only for a tokenizer
    that encodes each pre-split word on its own (WordPiece; BPE and sentencepiece with a
    prefix on every word), so the first ``VERIFY_WORDS`` words are also encoded by the
    tokenizer itself and compared: on any difference the cache turns itself off, says
    so, and every batch goes through the tokenizer.
    """

    VERIFY_WORDS = 2000

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.pieces: dict[str, list[int]] = {}
        self.enabled = bool(getattr(tokenizer, "is_fast", False))
        self.verified_words = 0
        self.template: tuple[list[int], list[int], list[int], list[int], int] | None = None
        """Ids and token types before and after the words, and the words' token type."""
        self.lock = threading.Lock()

    def encode(
        self, examples: Sequence[TokenExample], seq_len: int, indices: Sequence[int]
    ) -> list[Encoded]:
        """``examples`` encoded as :func:`encode` would, numbered by ``indices``."""
        with self.lock:
            if self.enabled and self.template and self.verified_words >= self.VERIFY_WORDS:
                return self._encode(examples, seq_len, indices)
            reference = [
                dataclasses.replace(e, index=indices[e.index])
                for e in encode(examples, self.tokenizer, "token-classification", seq_len)
            ]
            if not self.enabled:
                return reference
            if self.template is None:
                self.template = _template(reference)
            if self.template is not None:
                if _same(self._encode(examples, seq_len, indices), reference):
                    self.verified_words += sum(len(ex.tokens) for ex in examples)
                else:
                    self.enabled = False
                    log.info(
                        "this tokenizer encodes a word differently in context: "
                        "tokenising every sentence in full (slower)"
                    )
            return reference

    def _lookup(self, words: Sequence[str]) -> list[list[int]]:
        pieces = self.pieces
        try:
            return [pieces[w] for w in words]
        except KeyError:
            new = list(dict.fromkeys(w for w in words if w not in pieces))
            encoded = self.tokenizer.backend_tokenizer.encode_batch(
                [[w] for w in new], is_pretokenized=True, add_special_tokens=False
            )
            pieces.update((w, e.ids) for w, e in zip(new, encoded, strict=True))
            return [pieces[w] for w in words]

    def _encode(
        self, examples: Sequence[TokenExample], seq_len: int, indices: Sequence[int]
    ) -> list[Encoded]:
        assert self.template is not None
        head, tail, head_types, tail_types, body_type = self.template
        budget = max(seq_len - len(head) - len(tail), 0)
        out = []
        for index, example in zip(indices, examples, strict=True):
            word_pieces = self._lookup(example.tokens)
            counts = np.fromiter(map(len, word_pieces), dtype=np.int64, count=len(word_pieces))
            body = [i for p in word_pieces for i in p][:budget]
            starts = len(head) + np.cumsum(counts) - counts
            first = np.where((counts > 0) & (starts < len(head) + budget), starts, -1)
            owners = np.repeat(np.arange(len(counts)), counts)[:budget].tolist()
            out.append(
                Encoded(
                    index=index,
                    input_ids=np.asarray(head + body + tail, dtype=np.int64),
                    token_type_ids=np.asarray(
                        head_types + [body_type] * len(body) + tail_types, dtype=np.int64
                    ),
                    word_ids=(*[None] * len(head), *owners, *[None] * len(tail)),
                    words=len(counts),
                    truncated=bool((first < 0).any()),
                    first_positions=first,
                )
            )
        return out


def _template(
    reference: Sequence[Encoded],
) -> tuple[list[int], list[int], list[int], list[int], int] | None:
    """The special tokens around the words, read off a sentence the tokenizer encoded."""
    for e in reference:
        words = [p for p, w in enumerate(e.word_ids or ()) if w is not None]
        if not words or e.token_type_ids is None:
            continue
        ids, types = e.input_ids.tolist(), e.token_type_ids.tolist()
        start, end = words[0], words[-1] + 1
        return ids[:start], ids[end:], types[:start], types[end:], types[start]
    return None
