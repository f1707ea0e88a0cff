"""Tokens the model never saw are left out of token accuracy, and counted.

Issue 14: a 100,000-character sentence cut to 128 tokens reported token accuracy over
all 100,000 tokens, the unseen tail scored as a correct ``O``. Entity scores keep their
convention (a cut-off word is predicted ``O``, so an entity in the tail is missed).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kiln_lab.core.data import TokenExample
from kiln_lab.core.encode import BatchEncoder
from kiln_lab.core.evaluate import evaluate
from kiln_lab.core.metrics import RunningNer, score_ner
from kiln_lab.core.runtimes import CompiledModel
from tests.conftest import NER_LABELS, _tiny_tokenizer

SEQ_LEN = 128


class AlwaysOutside(CompiledModel):
    """Predicts ``O`` (label 0) for every token: the tail's truth decides the figures."""

    def run(self, batch: Any) -> np.ndarray:
        logits = np.zeros((*batch["input_ids"].shape, len(NER_LABELS)), dtype=np.float32)
        logits[..., NER_LABELS.index("O")] = 1.0
        return logits


def _long_sentence(length: int = 100_000) -> TokenExample:
    """All ``O`` but one PER entity in the middle, deep in the truncated tail."""
    tags = ["O"] * length
    tags[length // 2 : length // 2 + 2] = ["B-PER", "I-PER"]
    return TokenExample(tuple("中" * length), tuple(tags))


def _evaluate(examples: list[TokenExample], **kwargs: Any) -> Any:
    tokenizer = _tiny_tokenizer("bert")
    encoder = BatchEncoder(
        tokenizer, "token-classification", SEQ_LEN, tokenizer.pad_token_id, ("input_ids",)
    )
    batches = encoder.encode_all(examples, 8)
    return evaluate(
        AlwaysOutside(),
        iter(batches),
        examples,
        task="token-classification",
        labels=NER_LABELS,
        emit=lambda event: None,
        cancelled=lambda: False,
        **kwargs,
    ), batches


def test_a_truncated_tail_is_left_out_of_token_accuracy() -> None:
    short = TokenExample(("张", "三", "说"), ("B-PER", "I-PER", "O"))
    result, _ = _evaluate([_long_sentence(), short])
    figures = result.accuracy
    seen = SEQ_LEN - 2  # [CLS] and [SEP]
    assert figures["tokens"] == 100_003
    assert figures["truncated_tokens"] == 100_000 - seen
    # Seen: 126 O (all right) + the short sentence's 3 (only its O right).
    assert figures["token_accuracy"] == (seen + 1) / (seen + 3)
    # Entities keep their convention: the tail's PER is missed, as is the short one's.
    assert figures["entity_support"] == 2 and figures["entity_recall"] == 0.0
    assert result.truncated == 1


def test_a_resumed_run_leaves_out_the_same_tokens() -> None:
    examples = [_long_sentence(2_000), TokenExample(("甲",), ("O",))] * 5
    saved: dict[int, Any] = {}
    whole, batches = _evaluate(examples, checkpoint=saved.update)
    assert whole.accuracy["truncated_tokens"] == 5 * (2_000 - (SEQ_LEN - 2))
    rest = list(range(1, len(batches)))
    resumed = evaluate(
        AlwaysOutside(),
        iter([batches[n] for n in rest]),
        examples,
        task="token-classification",
        labels=NER_LABELS,
        emit=lambda event: None,
        cancelled=lambda: False,
        numbers=rest,
        completed={0: saved[0]},
    )
    assert len(rest) > 0 and resumed.accuracy == whole.accuracy


def test_running_scores_take_an_unseen_mask() -> None:
    true = [["B-PER", "I-PER", "O", "O"], ["O", "B-LOC"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["O", "O"]]
    unseen = np.array([False, False, False, True, False, True])
    running = RunningNer()
    running.update(true, pred, unseen)
    scores = running.snapshot()
    assert (scores.tokens, scores.truncated_tokens) == (6, 2)
    assert scores.token_accuracy == 1.0  # the 4 seen tokens are right
    plain = score_ner(true, pred)
    assert scores.overall == plain.overall and scores.per_type == plain.per_type
    assert plain.truncated_tokens == 0 and plain.token_accuracy == 5 / 6
