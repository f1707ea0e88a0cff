"""Score a model in training on a split, the way the pipeline scores it later.

The same ``encode`` / ``make_batches`` / ``decode_*`` path as evaluation runs, in fp32
PyTorch, so the figures a card records are the ones a fp32 PyTorch run reproduces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kiln_lab.core.data import TextExample, TokenExample
from kiln_lab.core.encode import decode_class, decode_tags, make_batches
from kiln_lab.core.metrics import score_classification, score_ner
from kiln_lab.core.models.families import FamilySpec
from kiln_lab.core.tokenization import encode

NER_FIGURES = ("entity_f1", "entity_precision", "entity_recall", "token_accuracy")
CLASSIFICATION_FIGURES = ("accuracy", "macro_f1")


def primary_metric(task: str) -> str:
    return "entity_f1" if task == "token-classification" else "accuracy"


def evaluate(
    model: Any,
    tokenizer: Any,
    examples: Sequence[TokenExample | TextExample],
    *,
    task: str,
    labels: Sequence[str],
    family: FamilySpec,
    seq_len: int,
    batch_size: int = 64,
) -> dict[str, float]:
    """The task's figures on ``examples`` (fp32, length-bucketed batches), plus counts."""
    import torch

    encoded = encode(examples, tokenizer, task, seq_len)
    batches = make_batches(
        encoded,
        batch_size=batch_size,
        pad_token_id=tokenizer.pad_token_id,
        input_names=family.input_names,
    )
    predictions: list[Any] = [None] * len(encoded)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for batch in batches:
            inputs = {name: torch.from_numpy(array) for name, array in batch.arrays.items()}
            logits = model(**inputs).logits.float().numpy()
            for row, index in enumerate(batch.indices):
                if task == "token-classification":
                    predictions[index] = decode_tags(logits, row, encoded[index], labels)
                else:
                    predictions[index] = decode_class(logits, row, labels)
    model.train(was_training)
    truncated = sum(e.truncated for e in encoded)
    if task == "token-classification":
        true = [list(ex.tags) for ex in examples]  # type: ignore[union-attr]
        # Words truncation cut off are left out of token accuracy, as in a run's evaluation.
        cut = [e.first_positions < 0 for e in encoded]  # type: ignore[operator]
        scores = score_ner(true, predictions, np.concatenate(cut) if cut else None).to_dict()
        figures = {name: round(float(scores[name]), 6) for name in NER_FIGURES}
    else:
        true_labels = [ex.label for ex in examples]  # type: ignore[union-attr]
        scores = score_classification(true_labels, predictions, labels).to_dict()
        figures = {name: round(float(scores[name]), 6) for name in CLASSIFICATION_FIGURES}
    return {**figures, "examples": len(examples), "truncated": truncated}
