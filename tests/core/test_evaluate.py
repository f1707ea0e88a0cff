"""The evaluation loop: array decoding and scoring equal the per-sentence reference, and
checkpoints resume to the same figures."""

from __future__ import annotations

import base64
import random
import zlib
from typing import Any

import numpy as np
import pytest

from kiln_lab.core.data import TextExample, TokenExample
from kiln_lab.core.encode import BatchEncoder, decode_tags
from kiln_lab.core.evaluate import evaluate
from kiln_lab.core.metrics import score_classification, score_ner
from kiln_lab.core.runtimes import CompiledModel
from tests.conftest import NER_LABELS, _tiny_tokenizer

CHARS = "江泽民在北京会见了来访的客人新华社电１９９８年ＡＢ"


class SeededLogits(CompiledModel):
    """Logits that depend only on the batch's token ids: reruns give the same predictions."""

    def __init__(self, labels: int, token_level: bool = True) -> None:
        self.labels, self.token_level = labels, token_level

    def run(self, batch: Any) -> np.ndarray:
        ids = batch["input_ids"]
        rng = np.random.default_rng(int(ids.sum()) * 7919 + ids.size)
        shape = (*ids.shape, self.labels) if self.token_level else (ids.shape[0], self.labels)
        return rng.normal(size=shape).astype(np.float32)


def _ner_examples(count: int, seed: int = 0) -> list[TokenExample]:
    rng = random.Random(seed)
    examples = []
    for _ in range(count):
        n = rng.randint(0, 30)  # some longer than the sequence length below: truncated
        examples.append(
            TokenExample(
                tuple(rng.choice(CHARS) for _ in range(n)),
                tuple(rng.choice(NER_LABELS) for _ in range(n)),
            )
        )
    return examples


def _ner_setup(count: int = 200) -> tuple[list[TokenExample], BatchEncoder]:
    tokenizer = _tiny_tokenizer("bert")
    encoder = BatchEncoder(
        tokenizer, "token-classification", 20, tokenizer.pad_token_id, ("input_ids",)
    )
    return _ner_examples(count), encoder


def _run(model: CompiledModel, batches: list, examples: list, **kwargs: Any) -> Any:
    task = "token-classification" if isinstance(examples[0], TokenExample) else "classification"
    labels = NER_LABELS if task == "token-classification" else ["neg", "pos"]
    return evaluate(
        model,
        iter(batches),
        examples,
        task=task,
        labels=labels,
        emit=lambda event: None,
        cancelled=lambda: False,
        **kwargs,
    )


INTERVAL_KEYS = ("confidence", "sequence", "intervals", "final", "complete", "per_language")


def _figures(accuracy: dict[str, Any]) -> dict[str, Any]:
    """The scores alone, without the intervals evaluate() adds beside them."""
    return {k: v for k, v in accuracy.items() if k not in INTERVAL_KEYS}


def test_ner_scores_equal_the_per_sentence_reference() -> None:
    examples, encoder = _ner_setup()
    batches = encoder.encode_all(examples, 16)
    model = SeededLogits(len(NER_LABELS))
    result = _run(model, batches, examples)
    expected: list[Any] = [None] * len(examples)
    unseen: list[Any] = [None] * len(examples)
    for batch, encoded in batches:
        logits = model.run(batch.arrays)
        by_index = {e.index: e for e in encoded}
        for row, index in enumerate(batch.indices):
            expected[index] = decode_tags(logits, row, by_index[index], NER_LABELS)
            unseen[index] = by_index[index].first_positions < 0
    assert result.predictions == expected
    true = [list(e.tags) for e in examples]
    # Issue 14: words truncation cut off are left out of token accuracy (counted in
    # truncated_tokens); entity scores still count them as predicted O.
    reference = score_ner(true, expected, np.concatenate(unseen)).to_dict()
    assert _figures(result.accuracy) == reference
    assert result.truncated == sum(len(e.tokens) > 18 for e in examples)
    assert reference["truncated_tokens"] == sum(max(len(e.tokens) - 18, 0) for e in examples)
    everything = score_ner(true, expected).to_dict()
    for name in ("entity_f1", "entity_precision", "entity_recall", "per_type", "tokens"):
        assert result.accuracy[name] == everything[name], name


def test_checkpoints_resume_to_the_same_figures() -> None:
    examples, encoder = _ner_setup()
    batches = encoder.encode_all(examples, 16)
    model = SeededLogits(len(NER_LABELS))
    saved: dict[int, Any] = {}
    whole = _run(model, batches, examples, checkpoint=saved.update)
    assert sorted(saved) == list(range(len(batches)))
    # Resume with the first half done (packed entries, deflated) and two entries in the
    # older formats, a tag string per word and plain label indices: all restore.
    done = {n: saved[n] for n in range(len(batches) // 2)}
    done[0] = {
        "indices": saved[0]["indices"],
        "predictions": [whole.predictions[i] for i in saved[0]["indices"]],
    }
    deflated = done[1].pop("label_ids_deflated")
    done[1]["label_ids"] = base64.b64encode(zlib.decompress(base64.b64decode(deflated))).decode()
    rest = list(range(len(batches) // 2, len(batches)))
    resumed = _run(model, [batches[n] for n in rest], examples, numbers=rest, completed=done)
    assert resumed.accuracy == whole.accuracy
    assert resumed.predictions == whole.predictions


def test_classification_scores_equal_the_reference() -> None:
    rng = random.Random(1)
    examples = [
        TextExample(
            "".join(rng.choice(CHARS) for _ in range(rng.randint(1, 25))),
            rng.choice(["neg", "pos"]),
        )
        for _ in range(100)
    ]
    tokenizer = _tiny_tokenizer("bert")
    encoder = BatchEncoder(tokenizer, "classification", 16, tokenizer.pad_token_id, ("input_ids",))
    batches = encoder.encode_all(examples, 8)
    model = SeededLogits(2, token_level=False)
    result = _run(model, batches, examples)
    expected: list[Any] = [None] * len(examples)
    for batch, _ in batches:
        best = model.run(batch.arrays).argmax(-1)
        for row, index in enumerate(batch.indices):
            expected[index] = ["neg", "pos"][int(best[row])]
    assert result.predictions == expected
    truth = [e.label for e in examples]
    reference = score_classification(truth, expected, labels=["neg", "pos"]).to_dict()
    assert _figures(result.accuracy) == reference
    # Issue 16: every figure with its interval, macro F1 and each class's too.
    spreads = result.accuracy["intervals"]
    assert spreads["accuracy"]["method"] == "wilson"
    for name, value in (("accuracy", reference["accuracy"]), ("macro_f1", reference["macro_f1"])):
        assert spreads[name]["low"] <= value <= spreads[name]["high"], name
    for label, score in reference["per_class"].items():
        assert spreads["per_class"][label]["f1"]["low"] <= score["f1"]
        assert score["f1"] <= spreads["per_class"][label]["f1"]["high"]


@pytest.mark.parametrize("bad", ["X", "PER"])
def test_a_tag_the_metric_cannot_read_is_a_data_error(bad: str) -> None:
    from kiln_lab.core.errors import DataError

    examples, encoder = _ner_setup(40)
    examples[5] = TokenExample(("北", "京"), ("O", bad))
    batches = encoder.encode_all(examples, 16)
    with pytest.raises(DataError, match="unsupported NER tag"):
        _run(SeededLogits(len(NER_LABELS)), batches, examples)


def test_checkpoints_of_another_batch_plan_are_dropped_not_mixed_in() -> None:
    """A run interrupted under another shard layout: its batch numbers name other
    examples now, so resuming from them would score some twice and some never."""
    from kiln_lab.core.stages.evaluate import _same_plan

    plan = [[0, 1], [2, 3], [4, 5]]
    same = {0: {"indices": [0, 1], "labels": b""}, 2: {"indices": [4, 5], "labels": b""}}
    assert _same_plan(same, plan) == same
    assert _same_plan({1: {"indices": [3, 2]}}, plan) == {}
    assert _same_plan({3: {"indices": [6, 7]}}, plan) == {}
