"""The build against the fp32 reference on the same examples: a paired difference.

Part of the evaluate stage for every run whose precision is not fp32: the fp32 graph
Kiln exported (or, where there is none, the PyTorch model it was exported from) is
run on exactly the examples the build scored, and the difference of the headline
figure is reported with a paired interval (:mod:`kiln_lab.core.metrics.paired`), and
read against the accuracy budget. It costs one more pass over the scored examples at
fp32 speed; ``--no-paired`` leaves it out.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from kiln_lab.core.stages.compile import Compiled
from kiln_lab.core.stages.context import StageContext
from kiln_lab.core.stages.load import Loaded
from kiln_lab.core.stages.resolve import Resolved

if TYPE_CHECKING:
    from kiln_lab.core.evaluate import EvaluationResult
    from kiln_lab.core.runtimes import CompiledModel

log = logging.getLogger(__name__)


def reference_model(loaded: Loaded, compiled: Compiled) -> tuple[CompiledModel, str]:
    """The fp32 reference to pair with: the exported fp32 ONNX graph in ONNX Runtime
    when there is one (fast), else the PyTorch model; and a name for it."""
    graphs = compiled.request.graphs
    if graphs.onnx is not None and graphs.onnx.exists():
        try:
            from kiln_lab.core.runtimes.memo import remembered
            from kiln_lab.core.runtimes.onnxruntime import OnnxRuntimeModel

            model = remembered(OnnxRuntimeModel(graphs.onnx), graphs.onnx)
            return model, "onnxruntime fp32 (exported graph)"
        except ImportError:  # pragma: no cover - onnxruntime is a core dependency
            pass
    from kiln_lab.core.runtimes.torch import TorchModel

    return TorchModel(loaded.model.model, loaded.input_names), "pytorch fp32"


def compare_with_fp32(
    ctx: StageContext,
    resolved: Resolved,
    loaded: Loaded,
    compiled: Compiled,
    result: EvaluationResult,
) -> dict[str, Any] | None:
    """The paired difference of the headline figure, as a JSON-able dict; None where
    the run is fp32 itself, scored nothing, or was asked not to pair."""
    from kiln_lab.core.encode import proxy_length, stream_batches
    from kiln_lab.core.evaluate import evaluate
    from kiln_lab.core.guard import budget_in_points
    from kiln_lab.core.metrics.outcomes import NerOutcomes
    from kiln_lab.core.metrics.paired import budget_verdict, paired_outcomes

    cfg = ctx.config
    if cfg.precision == "fp32" or not cfg.paired or result.outcomes is None:
        return None
    started = time.perf_counter()
    model, name = reference_model(loaded, compiled)
    candidate = result.outcomes
    if isinstance(candidate, NerOutcomes):
        indices, _ = candidate.counts()
    else:
        indices, _, _ = candidate.counts()
    order = sorted(indices.tolist(), key=lambda i: proxy_length(loaded.examples[i]))
    size = resolved.batch_size
    plan = [order[i : i + size] for i in range(0, len(order), size)]
    log.info("paired comparison: %d examples through the %s reference", len(order), name)
    reference = evaluate(
        model,
        stream_batches(loaded.encoder, loaded.examples, plan),
        loaded.examples,
        task=resolved.card.task,
        labels=resolved.card.labels,
        emit=lambda event: None,
        cancelled=ctx.cancelled,
        total=len(order),
        confidence=cfg.confidence,
    ).outcomes
    model.close()  # a remembered reference keeps its logits for the next run
    assert reference is not None
    difference = paired_outcomes(reference, candidate, cfg.confidence)
    points = budget_in_points(cfg.accuracy_budget, cfg.budget_mode, difference.reference)
    verdict = budget_verdict(difference, points)
    log.info("vs fp32 on the same %d examples: %s", difference.examples, verdict.sentence())
    return difference.to_dict() | {
        "reference_model": name,
        "budget": verdict.to_dict() | {"summary": verdict.sentence()},
        "seconds": round(time.perf_counter() - started, 3),
    }
