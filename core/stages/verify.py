"""The verify stage: the built model's logits against the PyTorch fp32 reference.

Run on a handful of test examples before the long evaluation, so a broken export or
a collapsed conversion shows at once, with the tolerance for the model family and
the precision. The report is remembered per weights, graph, inputs and settings: the
same comparison on a repeated run is read back, and the PyTorch model is not built.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
        picked = loaded.examples[: ctx.config.parity_samples]
        size = resolved.batch_size if resolved.profile.static_shapes else 8
        batches = [b for b, _ in loaded.encoder.encode_all(picked, size)]
        tolerance = loaded.model.family.parity_atol * PRECISION_SCALE.get(precision, 1.0)
        memo = _memo_path(loaded, compiled, picked, size, tolerance)
        report = _remembered(memo)
        remembered = report is not None
        if report is None:
            report = compare(
                TorchModel(loaded.model.model, loaded.input_names),
                compiled.model,
                batches,
                token_level=resolved.card.task == "token-classification",
                tolerance=tolerance,
            )
            if memo is not None:
                memo.write_text(json.dumps(report.to_dict()))
        else:
            log.info("parity as measured before on these inputs and this graph (%s)", memo)
        summary |= report.to_dict() | {"remembered": remembered}
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


def _memo_path(
    loaded: Loaded, compiled: Compiled, picked: Any, size: int, tolerance: float
) -> Path | None:
    """Where this comparison's report is kept: keyed by the weights, the exact graph the
    build runs (its sha256), the inputs, batch size, tolerance and runtime settings, so a
    repeated run skips building the PyTorch reference at all. None (no memo) for a build
    that is not one file Kiln can fingerprint."""
    from kiln_lab.core.data.types import content_hash
    from kiln_lab.core.export import cache_key, file_sha256
    from kiln_lab.core.paths import cache_dir

    model = compiled.model
    graph = getattr(model, "path", None) or getattr(getattr(model, "inner", None), "path", None)
    if graph is None or not Path(graph).is_file() or loaded.model.perf_only:
        return None
    key = cache_key(
        kind="parity",
        version=1,
        weights=loaded.model.weights_sha256,
        graph=file_sha256(Path(graph)),
        inputs=content_hash(picked),
        batch=size,
        tolerance=tolerance,
        settings={k: v for k, v in model.settings().items() if k != "cpu_affinity"},
    )
    return cache_dir("parity") / f"{key}.json"


def _remembered(memo: Path | None) -> ParityReport | None:
    from kiln_lab.core.parity import ParityReport

    if memo is None or not memo.is_file():
        return None
    try:
        data = json.loads(memo.read_text())
        data["disagreeing"] = tuple(data.get("disagreeing") or ())
        return ParityReport(**data)
    except (ValueError, TypeError):
        memo.unlink(missing_ok=True)
        return None
