"""TorchScript: a traced module (``torch.jit.load``), as the VastAI recipe exports it.

The export stage traces at the run's precision for this runtime (a vendor compiler
that reads TorchScript gets an fp32 trace and lowers it itself).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from kiln_lab.core.errors import ConfigError, RuntimeFailure
from kiln_lab.core.runtimes.base import (
    Batch,
    BuildRequest,
    Built,
    CompiledModel,
    Runtime,
    cpu_affinity,
)
from kiln_lab.core.runtimes.torch import TORCH_DTYPES, set_torch_threads

if TYPE_CHECKING:
    from kiln_lab.core.profiles import Profile


class TorchScriptModel(CompiledModel):
    """A traced TorchScript module (``torch.jit.load``), as the VastAI recipe exports."""

    def __init__(
        self,
        path: Path,
        input_names: tuple[str, ...],
        *,
        threads: int | None = None,
        inter_op_threads: int | None = None,
        precision: str = "fp32",
        device: str = "cpu",
    ) -> None:
        import torch

        set_torch_threads(threads, inter_op_threads)
        self._torch = torch
        self.device = torch.device(device)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # deprecated in torch 2.13
                self.module = torch.jit.load(str(path), map_location=self.device).eval()
        except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError and friends
            raise RuntimeFailure(
                f"TorchScript could not load the model: {str(exc).splitlines()[0][:300]}",
                path=path,
                hint="the file may be corrupt: `kiln cache clear` and run again",
            ) from exc
        self.path = Path(path)
        self.input_names = input_names
        self.precision = precision
        self.description = f"TorchScript {precision}"

    def run(self, batch: Batch) -> np.ndarray:
        torch = self._torch
        args = [
            torch.from_numpy(np.ascontiguousarray(batch[n])).to(self.device)
            for n in self.input_names
        ]
        with torch.inference_mode():
            return self.module(*args).float().cpu().numpy()

    def settings(self) -> dict[str, Any]:
        torch = self._torch
        return {
            "runtime": "torchscript",
            "precision": self.precision,
            "device": str(self.device),
            "intra_op_threads": torch.get_num_threads(),
            "inter_op_threads": torch.get_num_interop_threads(),
            "cpu_affinity": cpu_affinity(),
        }


class TorchScriptRuntime(Runtime):
    name: ClassVar[str] = "torchscript"
    precisions: ClassVar[frozenset[str]] = frozenset(TORCH_DTYPES)

    def exports(self, profile: Profile) -> tuple[str, ...]:
        return ("torchscript",)

    def export_precision(self, precision: str) -> str:
        return precision

    def build(self, request: BuildRequest) -> Built:
        defaults = request.profile.defaults
        if request.graphs.torchscript is None:
            raise ConfigError("the TorchScript runtime needs the export stage's TorchScript file")
        model = TorchScriptModel(
            request.graphs.torchscript,
            request.input_names,
            threads=defaults.intra_op_threads,
            inter_op_threads=defaults.inter_op_threads,
            precision=request.precision,
            device=request.profile.device,
        )
        return Built(request.fixed(model))

    def open(
        self, path: Path, *, threads: int | None = None, input_names: tuple[str, ...] = ()
    ) -> CompiledModel:
        if not input_names:
            raise ConfigError("a TorchScript artifact needs its input names")
        return TorchScriptModel(path, input_names, threads=threads)
