"""The load stage: the fp32 reference model, the examples and how they are batched."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kiln_lab.core.stages.context import StageContext
from kiln_lab.core.stages.resolve import Resolved

if TYPE_CHECKING:
    from kiln_lab.core.data.types import Example
    from kiln_lab.core.encode import BatchEncoder
    from kiln_lab.core.models.loading import LoadedModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loaded:
    """The reference model and the run's examples, encoded and planned in batches."""

    model: LoadedModel
    examples: tuple[Example, ...]
    encoder: BatchEncoder
    plan: tuple[tuple[int, ...], ...]
    """Example indices per batch, in the order the evaluation runs them."""

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(self.model.family.input_names)


def run(ctx: StageContext, resolved: Resolved) -> Loaded:
    from kiln_lab.core.encode import BatchEncoder, plan_batches
    from kiln_lab.core.models import load_model

    cfg = ctx.config
    card, profile = resolved.card, resolved.profile
    with ctx.stage("load") as summary:
        weights = Path(cfg.weights) if cfg.weights else None
        loaded = load_model(card, weights_dir=weights, perf_only=cfg.perf_only)
        examples = resolved.split.examples[: cfg.limit] if cfg.limit else resolved.split.examples
        encoder = BatchEncoder(
            tokenizer=loaded.tokenizer,
            task=card.task,
            seq_len=resolved.seq_len,
            pad_token_id=loaded.tokenizer.pad_token_id or 0,
            input_names=loaded.family.input_names,
            padding="fixed" if profile.static_shapes else cfg.padding,  # type: ignore[arg-type]
            static_batch=resolved.batch_size if profile.static_shapes else None,
            call_cost=resolved.runtime.batch_call_cost(profile),
        )
        # The encoder's padding: a static-shape graph pads every batch to full rows.
        plan = plan_batches(
            examples,
            resolved.batch_size,
            encoder.padding,
            shards=cfg.order == "shards",
            call_cost=encoder.call_cost,
        )
        if profile.static_shapes:
            log.info(
                "profile %s needs static shapes: every batch is padded to %d x %d",
                profile.name,
                resolved.batch_size,
                resolved.seq_len,
            )
        params = loaded.parameters
        summary |= {
            "parameters": params,
            "examples": len(examples),
            "batches": len(plan),
            "perf_only": loaded.perf_only,
            "weights_sha256": loaded.weights_sha256,
            "trust_remote_code": card.trust_remote_code,
        }
        log.info(
            "loaded %s: %s parameters; %d examples in %d batches of up to %d (%s padding)",
            card.name,
            f"{params / 1e6:.2f}M" if params is not None else "(random weights, not built yet)",
            len(examples),
            len(plan),
            resolved.batch_size,
            cfg.padding,
        )
    return Loaded(loaded, tuple(examples), encoder, tuple(tuple(b) for b in plan))
