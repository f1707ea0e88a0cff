"""TorchScript export: ``torch.jit.trace`` of the model, cached like every artifact.

The VastAI recipe starts from a traced TorchScript file (its ``pt2torchscript.py``);
Kiln traces the eager-attention model through a small wrapper that takes the inputs
positionally and returns only the logits, then freezes it. The traced graph keeps the
batch and sequence axes dynamic (checked against eager in the tests). A bf16 trace is
traced from a bf16 copy, so the reference model is never touched.
"""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path
from typing import Any

from kiln_lab.core.export import _dummy_inputs, build_entry, cache_key
from kiln_lab.core.runtimes.torch import TORCH_DTYPES

log = logging.getLogger(__name__)

TORCHSCRIPT_VERSION = 1


def _wrapper(model: Any, input_names: tuple[str, ...]) -> Any:
    import torch

    class LogitsOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(input_names, inputs, strict=True))).logits

    return LogitsOnly().eval()


def export_torchscript(
    model: Any,
    *,
    input_names: tuple[str, ...],
    weights_sha256: str,
    precision: str = "fp32",
    static_shape: tuple[int, int] | None = None,
) -> tuple[Path, bool]:
    """Trace (or reuse) a TorchScript file; returns ``(path, reused_from_cache)``."""
    import torch

    key = cache_key(
        kind="torchscript",
        version=TORCHSCRIPT_VERSION,
        weights=weights_sha256,
        inputs=input_names,
        precision=precision,
        static=static_shape,
        torch=torch.__version__,
        arch=model.config.to_json_string(use_diff=False),
    )
    batch, seq_len = static_shape or (2, 16)
    feeds = _dummy_inputs(input_names, batch, seq_len)
    example = tuple(feeds[name] for name in input_names)
    source = model
    if precision != "fp32":
        source = copy.deepcopy(model).to(getattr(torch, TORCH_DTYPES[precision]))

    def build(work: Path) -> dict[str, Any]:
        log.info("tracing TorchScript (%s, example shape %dx%d)", precision, batch, seq_len)
        with torch.no_grad(), warnings.catch_warnings():
            # TorchScript is deprecated in torch 2.13 but is what the VastAI recipe feeds
            # its compiler; the tracer's notes about constant Python values are expected.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            traced = torch.jit.trace(_wrapper(source, input_names), example, check_trace=False)
            frozen = torch.jit.freeze(traced.eval())
            torch.jit.save(frozen, str(work / "model.pt"))
        return {"inputs": list(input_names), "precision": precision}

    path, _, reused = build_entry(
        key,
        build,
        what="a TorchScript trace",
        failure="TorchScript trace failed",
        hint="run with --debug for the full trace",
        model_file="model.pt",
    )
    if reused:
        return path, True
    log.info("TorchScript written: %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return path, False
