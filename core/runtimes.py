"""Runtimes: the thing that executes a built model, behind one small interface.

Every runtime takes the same padded numpy batch and returns logits as numpy, so the
evaluation loop, the parity check and the benchmark never care which one runs.
Runtimes live in a plain dict registry keyed by the profile's ``runtime`` name.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConfigError, RuntimeFailure

log = logging.getLogger(__name__)

Batch = Mapping[str, np.ndarray]


class CompiledModel(ABC):
    """A model ready to run on a target."""

    description: str = ""

    @abstractmethod
    def run(self, batch: Batch) -> np.ndarray:
        """Logits for one padded batch (float32, batch-first)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sessions and memory."""

    def settings(self) -> dict[str, Any]:
        """Threads, providers and other knobs, recorded with each run for reproducibility."""
        return {}


class TorchModel(CompiledModel):
    """PyTorch eager: the reference, and the ``cpu-torch`` profile."""

    def __init__(self, model: Any, input_names: tuple[str, ...], threads: int | None = None):
        import torch

        self._torch = torch
        self.model = model
        self.input_names = input_names
        if threads:
            torch.set_num_threads(threads)
        self.description = "PyTorch eager fp32"

    def run(self, batch: Batch) -> np.ndarray:
        torch = self._torch
        feeds = {
            name: torch.from_numpy(np.ascontiguousarray(batch[name])) for name in self.input_names
        }
        with torch.inference_mode():
            return self.model(**feeds).logits.float().numpy()

    def settings(self) -> dict[str, Any]:
        return {"intra_op_threads": self._torch.get_num_threads(), "runtime": "torch"}


class OnnxRuntimeModel(CompiledModel):
    """An ONNX Runtime inference session over an exported graph."""

    def __init__(
        self,
        path: Path,
        *,
        providers: tuple[str, ...] = ("CPUExecutionProvider",),
        intra_op_threads: int | None = None,
        inter_op_threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if intra_op_threads:
            options.intra_op_num_threads = intra_op_threads
        if inter_op_threads:
            options.inter_op_num_threads = inter_op_threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=options, providers=list(providers) or None
            )
        except Exception as exc:  # noqa: BLE001 - ORT raises its own hierarchy
            raise RuntimeFailure(
                f"ONNX Runtime could not load the model: {str(exc).splitlines()[0][:300]}",
                path=path,
                hint="the file may be corrupt: `kiln cache clear` and run again",
            ) from exc
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self.path = Path(path)
        self._options = options
        self.providers = tuple(self.session.get_providers())
        self.description = f"ONNX Runtime ({', '.join(self.providers)})"

    def run(self, batch: Batch) -> np.ndarray:
        feeds = {
            name: np.ascontiguousarray(batch[name], dtype=np.int64) for name in self.input_names
        }
        return self.session.run(None, feeds)[0]

    def settings(self) -> dict[str, Any]:
        return {
            "runtime": "onnxruntime",
            "providers": list(self.providers),
            "intra_op_threads": self._options.intra_op_num_threads or "default",
            "inter_op_threads": self._options.inter_op_num_threads or "default",
        }


RuntimeFactory = Callable[..., CompiledModel]
RUNTIMES: dict[str, RuntimeFactory] = {
    "torch": TorchModel,
    "onnxruntime": OnnxRuntimeModel,
}


def get_runtime(name: str) -> RuntimeFactory:
    try:
        return RUNTIMES[name]
    except KeyError:
        raise ConfigError(
            f"unknown runtime {name!r}", hint=f"known runtimes: {', '.join(sorted(RUNTIMES))}"
        ) from None
