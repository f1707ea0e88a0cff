"""The verify stage: the built model's logits against the PyTorch fp32 reference.

Run on a handful of test examples before the long evaluation, so a broken export or
a collapsed conversion shows at once, with the tolerance for the model family and
the precision.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from kiln_lab.core.stages.compile import Compiled
from kiln_lab.core.stages.context import StageContext
from kiln_lab.core.stages.load import Loaded
from kiln_lab.core.stages.resolve import Resolved

if TYPE_CHECKING:
    from kiln_lab.core.parity import ParityReport

log = logging.getLogger(__name__)


def run(
    ctx: StageContext, resolved: Resolved, loaded: Loaded, compiled: Compiled
) -> ParityReport | None:
    """The parity report; None where the stage is skipped."""
    from kiln_lab.core.parity import PRECISION_SCALE, compare
    from kiln_lab.core.runtimes.torch import TorchModel

    precision = ctx.config.precision
    if resolved.runtime.is_reference(precision):
        ctx.skip("verify", "the profile runs the fp32 PyTorch reference itself")
        return None
    if not compiled.model.runs_locally:
        ctx.skip("verify", f"{resolved.profile.name}'s artifact runs only on its device tool")
        return None
    with ctx.stage("verify") as summary:
        reference = TorchModel(loaded.model.model, loaded.input_names)
        picked = loaded.examples[: ctx.config.parity_samples]
        size = resolved.batch_size if resolved.profile.static_shapes else 8
        batches = [b for b, _ in loaded.encoder.encode_all(picked, size)]
        tolerance = loaded.model.family.parity_atol * PRECISION_SCALE.get(precision, 1.0)
        report = compare(
            reference,
            compiled.model,
            batches,
            token_level=resolved.card.task == "token-classification",
            tolerance=tolerance,
        )
        summary |= report.to_dict()
        level = logging.INFO if report.status == "pass" else logging.WARNING
        log.log(
            level,
            "parity %s on %d samples: max |Δlogit| %.2e (tolerance %.1e), "
            "cosine %.6f, agreement %.4f",
            report.status.upper(),
            report.samples,
            report.max_abs_diff,
            tolerance,
            report.cosine,
            report.agreement,
        )
        if report.disagreeing:
            log.warning(
                "predictions differ from the reference on examples %s (indices in %s/%s)",
                ", ".join(map(str, report.disagreeing)),
                resolved.dataset.name,
                resolved.split.name,
            )
    return report
