"""Batches for training: word-aligned labels, length-bucketed order, the optimiser.

Length bucketing is what makes CPU training affordable here: shuffle, sort by length
within chunks of 50 batches, shuffle the batches. Each batch is padded only to its
longest member, and the order is still different every epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kiln_lab.core.tokenization import Encoded
from kiln_lab.core.training.recipes import Recipe

IGNORE_INDEX = -100
"""Label of positions the loss skips: specials, padding, later sub-tokens of a word."""
CHUNK_BATCHES = 50
"""Batches per sorting chunk: large enough to bucket well, small enough to stay random."""
PAD_MULTIPLE = 8
"""Batch widths are rounded up to this: a few distinct shapes instead of one per length,
so oneDNN builds (and caches) far fewer kernels; costs about 4 padding tokens a row."""


def training_labels(encoded: Encoded, example: Any, task: str, label2id: dict[str, int]) -> Any:
    """Token labels on each word's first sub-token (-100 elsewhere), or the class id."""
    if task != "token-classification":
        return label2id[example.label]
    labels = np.full(encoded.length, IGNORE_INDEX, dtype=np.int64)
    seen: set[int] = set()
    for position, word in enumerate(encoded.word_ids or ()):
        if word is not None and word not in seen:
            seen.add(word)
            labels[position] = label2id[example.tags[word]]
    return labels


def epoch_order(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Index batches for one epoch: shuffled, sorted by length within chunks, shuffled."""
    order = rng.permutation(len(lengths))
    batches: list[np.ndarray] = []
    chunk_size = batch_size * CHUNK_BATCHES
    for start in range(0, len(order), chunk_size):
        chunk = order[start : start + chunk_size]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def collate(
    rows: np.ndarray,
    encoded: Sequence[Encoded],
    targets: Sequence[Any],
    *,
    task: str,
    pad_id: int,
    max_width: int,
) -> dict[str, Any]:
    """Tensors for one batch, padded to its longest row (rounded up, at most ``max_width``)."""
    import torch

    longest = max(encoded[i].length for i in rows)
    width = min(-(-longest // PAD_MULTIPLE) * PAD_MULTIPLE, max(max_width, longest))
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    token_labels = np.full((len(rows), width), IGNORE_INDEX, dtype=np.int64)
    for r, i in enumerate(rows):
        n = encoded[i].length
        ids[r, :n] = encoded[i].input_ids
        mask[r, :n] = 1
        if task == "token-classification":
            token_labels[r, :n] = targets[i]
    labels = (
        token_labels if task == "token-classification" else np.array([targets[i] for i in rows])
    )
    return {
        "input_ids": torch.from_numpy(ids),
        "attention_mask": torch.from_numpy(mask),
        "labels": torch.from_numpy(labels),
    }


def make_optimizer(model: Any, recipe: Recipe, total_steps: int) -> tuple[Any, Any]:
    """AdamW without decay on biases and LayerNorm, linear warm-up then linear decay to 0."""
    import torch

    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if param.ndim < 2 or "LayerNorm" in name else decay).append(param)
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": recipe.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=recipe.learning_rate,
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    warmup = max(1, int(total_steps * recipe.warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
