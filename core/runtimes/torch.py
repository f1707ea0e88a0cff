"""PyTorch eager: the fp32 reference, and the ``cpu-torch`` / ``cuda-torch`` profiles.

Nothing is exported or converted: the loaded model runs as it is, cast to bf16 / fp16
or moved to the GPU where the profile asks.
"""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from kiln_lab.core.errors import ConfigError
from kiln_lab.core.runtimes.base import (
    Batch,
    BuildRequest,
    Built,
    CompiledModel,
    Runtime,
    cpu_affinity,
)

if TYPE_CHECKING:
    from kiln_lab.core.profiles import Profile

log = logging.getLogger(__name__)

TORCH_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def set_torch_threads(intra_op: int | None, inter_op: int | None) -> None:
    """Apply thread counts to PyTorch (process-wide); inter-op can only be set once."""
    import torch

    if intra_op:
        torch.set_num_threads(intra_op)
    if inter_op and torch.get_num_interop_threads() != inter_op:
        try:
            torch.set_num_interop_threads(inter_op)
        except RuntimeError:
            log.warning(
                "PyTorch inter-op threads already fixed at %d for this process; asked for %d",
                torch.get_num_interop_threads(),
                inter_op,
            )


TORCH_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


class TorchModel(CompiledModel):
    """PyTorch eager: the reference, and the ``cpu-torch`` / ``cuda-torch`` profiles.

    For bf16 / fp16 or another device the model is copied first, so the fp32 reference
    that the verify stage compares with is never changed underneath it.
    """

    def __init__(
        self,
        model: Any,
        input_names: tuple[str, ...],
        threads: int | None = None,
        *,
        inter_op_threads: int | None = None,
        precision: str = "fp32",
        device: str = "cpu",
    ):
        import torch

        if precision not in TORCH_DTYPES:
            raise ConfigError(f"PyTorch builds fp32, bf16 or fp16 here, not {precision}")
        self._torch = torch
        self.device = torch.device(device)
        self.precision = precision
        dtype = getattr(torch, TORCH_DTYPES[precision])
        if precision != "fp32" or self.device.type != "cpu":
            model = copy.deepcopy(model).to(device=self.device, dtype=dtype)
        self.model = model.eval()
        self.input_names = input_names
        set_torch_threads(threads, inter_op_threads)
        where = "" if self.device.type == "cpu" else f" on {self.device}"
        self.description = f"PyTorch eager {precision}{where}"

    def run(self, batch: Batch) -> np.ndarray:
        torch = self._torch
        feeds = {
            name: torch.from_numpy(np.ascontiguousarray(batch[name])).to(self.device)
            for name in self.input_names
        }
        with torch.inference_mode():
            return self.model(**feeds).logits.float().cpu().numpy()

    def settings(self) -> dict[str, Any]:
        torch = self._torch
        found = {
            "runtime": "torch",
            "precision": self.precision,
            "device": str(self.device),
            "intra_op_threads": torch.get_num_threads(),
            "inter_op_threads": torch.get_num_interop_threads(),
            "cpu_affinity": cpu_affinity(),
        }
        if self.device.type == "cuda":
            found["gpu"] = torch.cuda.get_device_name(self.device)
        return found


class TorchRuntime(Runtime):
    name: ClassVar[str] = "torch"
    precisions: ClassVar[frozenset[str]] = frozenset(TORCH_DTYPES)

    def exports(self, profile: Profile) -> tuple[str, ...]:
        return ()

    def is_reference(self, precision: str) -> bool:
        return precision == "fp32"

    def build(self, request: BuildRequest) -> Built:
        defaults = request.profile.defaults
        return Built(
            TorchModel(
                request.reference,
                request.input_names,
                defaults.intra_op_threads,
                inter_op_threads=defaults.inter_op_threads,
                precision=request.precision,
                device=request.profile.device,
            )
        )
