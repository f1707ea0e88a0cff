"""Parity: does the built artifact compute what the PyTorch fp32 reference computes?

Compared on the same padded batches, over real (unpadded) positions only: maximum and
mean absolute logit difference, cosine similarity, and prediction agreement. The
family's tolerance and the precision decide pass / warn / fail; the verdict is stored
with the run either way, because a failing artifact still deserves an accuracy figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from kiln_lab.core.encode import PaddedBatch
from kiln_lab.core.runtimes import CompiledModel

# Largest max-abs logit difference that passes, per precision, scaled by the family's.
PRECISION_SCALE = {"fp32": 1.0, "bf16": 100.0, "fp16": 30.0, "int8": 300.0}
# Prediction agreement under which the verdict is "fail" rather than "warn".
FAIL_AGREEMENT = 0.99
SHOWN_DISAGREEMENTS = 5
"""How many disagreeing examples a report names (enough to look at, not a dump)."""


@dataclass(frozen=True)
class ParityReport:
    samples: int
    positions: int
    max_abs_diff: float
    mean_abs_diff: float
    cosine: float
    agreement: float
    tolerance: float
    status: str
    disagreeing: tuple[int, ...] = ()
    """The first examples (their indices in the split) whose prediction differs."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(
    reference: CompiledModel,
    candidate: CompiledModel,
    batches: Sequence[PaddedBatch],
    *,
    token_level: bool,
    tolerance: float,
) -> ParityReport:
    ref_rows, cand_rows = [], []
    disagreeing: list[int] = []
    samples = 0
    # One call for every batch: a vendor tool pays its start-up once, not per batch.
    candidates = candidate.run_many([batch.arrays for batch in batches])
    for batch, logits in zip(batches, candidates, strict=True):
        rows = batch.size  # static-shape batches carry padding rows: compare real ones
        ref = reference.run(batch.arrays).astype(np.float64)[:rows]
        cand = logits.astype(np.float64)[:rows]
        differs = ref.argmax(-1) != cand.argmax(-1)
        if token_level:
            mask = batch.arrays["attention_mask"][:rows].astype(bool)
            differs = (differs & mask).any(axis=1)
            ref_rows.append(ref[mask])
            cand_rows.append(cand[mask])
        else:
            ref_rows.append(ref)
            cand_rows.append(cand)
        disagreeing += [batch.indices[r] for r in np.flatnonzero(differs)]
        samples += batch.size
    ref_all = np.concatenate(ref_rows)
    cand_all = np.concatenate(cand_rows)
    diff = np.abs(ref_all - cand_all)
    dot = np.sum(ref_all * cand_all, axis=-1)
    norms = np.linalg.norm(ref_all, axis=-1) * np.linalg.norm(cand_all, axis=-1)
    cosine = float(np.mean(dot / np.maximum(norms, 1e-12)))
    agreement = float(np.mean(ref_all.argmax(-1) == cand_all.argmax(-1)))
    max_abs = float(diff.max())
    # Logits within tolerance pass even if near-tied predictions flip (random weights do
    # that); beyond it, agreement decides whether the drift matters.
    if max_abs <= tolerance:
        status = "pass"
    elif agreement >= FAIL_AGREEMENT:
        status = "warn"
    else:
        status = "fail"
    return ParityReport(
        samples=samples,
        positions=int(ref_all.shape[0]),
        max_abs_diff=max_abs,
        mean_abs_diff=float(diff.mean()),
        cosine=cosine,
        agreement=agreement,
        tolerance=tolerance,
        status=status,
        disagreeing=tuple(int(i) for i in disagreeing[:SHOWN_DISAGREEMENTS]),
    )
