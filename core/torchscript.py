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
import shutil
import warnings
from pathlib import Path
from typing import Any

from core.errors import ExportError
from core.export import (
    cache_key,
    disk_full,
    entry_dir,
    new_workdir,
    publish_entry,
    reuse_entry,
    write_meta,
)
from core.runtimes import TORCH_DTYPES

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
    target = entry_dir(key)
    path = target / "model.pt"
    if reuse_entry(target, model_file="model.pt") is not None:
        log.info("reusing cached TorchScript trace %s", path)
        return path, True
    batch, seq_len = static_shape or (2, 16)
    ids = torch.full((batch, seq_len), 5, dtype=torch.long)
    feeds = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    feeds["token_type_ids"] = torch.zeros_like(ids)
    example = tuple(feeds[name] for name in input_names)
    source = model
    if precision != "fp32":
        source = copy.deepcopy(model).to(getattr(torch, TORCH_DTYPES[precision]))
    tmp = new_workdir(".trace-", "a TorchScript trace")
    try:
        log.info("tracing TorchScript (%s, example shape %dx%d)", precision, batch, seq_len)
        with torch.no_grad(), warnings.catch_warnings():
            # TorchScript is deprecated in torch 2.13 but is what the VastAI recipe feeds
            # its compiler; the tracer's notes about constant Python values are expected.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            traced = torch.jit.trace(_wrapper(source, input_names), example, check_trace=False)
            frozen = torch.jit.freeze(traced.eval())
            torch.jit.save(frozen, str(tmp / "model.pt"))
        write_meta(
            tmp,
            {"key": key, "inputs": list(input_names), "precision": precision},
            model_file="model.pt",
        )
        publish_entry(tmp, target, model_file="model.pt")
    except Exception as exc:
        raise disk_full(exc, "a TorchScript trace", target.parent) or ExportError(
            f"TorchScript trace failed: {str(exc).splitlines()[0][:300]}",
            hint="run with --debug for the full trace",
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("TorchScript written: %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return path, False
