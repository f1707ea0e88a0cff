"""Runtimes: the thing that executes a built model, behind one small interface.

Every runtime takes the same padded numpy batch and returns logits as numpy, so the
evaluation loop, the parity check and the benchmark never care which one runs.
Runtimes live in a plain dict registry keyed by name; OpenVINO and Paddle Inference
are imported only when asked for. ``settings()`` reports the knobs actually in effect
(threads read back from the runtime, not the ones asked for), recorded with each run.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kiln_lab.core.errors import ConfigError, RuntimeFailure

log = logging.getLogger(__name__)

Batch = Mapping[str, np.ndarray]
ProviderSpec = str | tuple[str, dict[str, Any]]


OUT_OF_MEMORY_TEXT = (
    "failed to allocate memory",
    "not enough memory",
    "can't allocate memory",
    "out of memory",
    "bad_alloc",
)


def out_of_memory(exc: BaseException, batch: Batch) -> RuntimeFailure | None:
    """A clear error with the fix when ``exc`` is a batch that did not fit in memory."""
    text = str(exc).lower()
    if not isinstance(exc, MemoryError) and not any(t in text for t in OUT_OF_MEMORY_TEXT):
        return None
    shape = next(iter(batch.values())).shape
    rows, length = int(shape[0]), int(shape[1]) if len(shape) > 1 else 0
    detail = str(exc).splitlines()[0][:200] if str(exc) else "no details"
    return RuntimeFailure(
        f"out of memory running a batch of {rows} x {length} tokens "
        f"({type(exc).__name__}: {detail})",
        hint=f"run again with a smaller --batch-size (e.g. --batch-size {max(1, rows // 2)}) "
        "or a shorter --seq-len; `kiln resume` keeps the batches already evaluated",
    )


def _translating_memory_errors(run: Any) -> Any:
    @functools.wraps(run)
    def wrapper(self: CompiledModel, batch: Batch) -> np.ndarray:
        try:
            return run(self, batch)
        except RuntimeFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - only memory failures are translated
            failure = out_of_memory(exc, batch)
            if failure is None:
                raise
            raise failure from exc

    return wrapper


class CompiledModel(ABC):
    """A model ready to run on a target."""

    description: str = ""
    runs_locally: bool = True
    """False for artifacts only a vendor tool can execute (parity and accuracy skip)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Every runtime's run() reports a batch too large for memory the same way.
        super().__init_subclass__(**kwargs)
        if "run" in cls.__dict__ and not getattr(
            cls.__dict__["run"], "__isabstractmethod__", False
        ):
            cls.run = _translating_memory_errors(cls.__dict__["run"])  # type: ignore[method-assign]

    @abstractmethod
    def run(self, batch: Batch) -> np.ndarray:
        """Logits for one padded batch (float32, batch-first)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sessions and memory."""

    def settings(self) -> dict[str, Any]:
        """Threads, providers and other knobs, recorded with each run for reproducibility."""
        return {}


def cpu_affinity() -> int:
    """CPUs this process may run on (what a thread count should be compared with)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def physical_cores() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


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


class OnnxRuntimeModel(CompiledModel):
    """An ONNX Runtime inference session over an exported graph."""

    def __init__(
        self,
        path: Path,
        *,
        providers: Sequence[ProviderSpec] = ("CPUExecutionProvider",),
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
        requested = list(providers) or ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=options, providers=requested
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
        self.requested = tuple(p if isinstance(p, str) else p[0] for p in requested)
        self.provider_specs = tuple(requested)
        self.providers = tuple(self.session.get_providers())
        first = self.requested[0]
        if first not in self.providers:
            # ORT falls back to the CPU quietly when a GPU provider's libraries fail to
            # load; a CPU figure labelled as a GPU one is worse than no figure.
            raise RuntimeFailure(
                f"ONNX Runtime did not enable {first} (session has: "
                f"{', '.join(self.providers)}); its libraries failed to load",
                path=path,
                hint="check the CUDA / cuDNN / TensorRT libraries that onnxruntime-gpu needs "
                "(run with --debug and see ONNX Runtime's warnings)",
            )
        self.description = f"ONNX Runtime ({', '.join(self.providers)})"

    def run(self, batch: Batch) -> np.ndarray:
        feeds = {
            name: np.ascontiguousarray(batch[name], dtype=np.int64) for name in self.input_names
        }
        return self.session.run(None, feeds)[0]

    def settings(self) -> dict[str, Any]:
        intra = self._options.intra_op_num_threads
        inter = self._options.inter_op_num_threads
        return {
            "runtime": "onnxruntime",
            "providers": list(self.providers),
            # 0 means ORT's own choice: one thread per physical core (inter-op: 1, sequential).
            "intra_op_threads": intra or physical_cores(),
            "intra_op_threads_source": "profile" if intra else "onnxruntime default",
            "inter_op_threads": inter or 1,
            "cpu_affinity": cpu_affinity(),
        }


class FixedShapeModel(CompiledModel):
    """Runs a static-shape artifact on any batch: pads to (batch, seq_len), slices back.

    Padded rows are all-zero (attention mask 0) and dropped from the result; batches
    larger than the compiled batch run in chunks.
    """

    def __init__(self, inner: CompiledModel, batch_size: int, seq_len: int) -> None:
        self.inner = inner
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.description = f"{inner.description}, static {batch_size}x{seq_len}"

    def run(self, batch: Batch) -> np.ndarray:
        rows, length = next(iter(batch.values())).shape
        if length > self.seq_len:
            raise RuntimeFailure(
                f"a batch of length {length} exceeds the compiled sequence length {self.seq_len}",
                hint=f"run with --seq-len {self.seq_len} or compile for a longer one",
            )
        outputs = []
        for start in range(0, rows, self.batch_size):
            chunk = {k: v[start : start + self.batch_size] for k, v in batch.items()}
            n = next(iter(chunk.values())).shape[0]
            padded = {}
            for name, array in chunk.items():
                full = np.zeros((self.batch_size, self.seq_len), dtype=array.dtype)
                full[:n, :length] = array
                padded[name] = full
            logits = self.inner.run(padded)[:n]
            if logits.ndim == 3:  # token classification: back to the batch's own length
                logits = logits[:, :length]
            outputs.append(logits)
        return np.concatenate(outputs)

    def close(self) -> None:
        self.inner.close()

    def settings(self) -> dict[str, Any]:
        return self.inner.settings() | {"static_shape": [self.batch_size, self.seq_len]}


class ToolOnlyModel(CompiledModel):
    """An artifact only its vendor tool can execute (an Ascend .om, a VastAI module...)."""

    runs_locally = False

    def __init__(self, path: Path, profile_name: str, settings: dict[str, Any]) -> None:
        self.path = Path(path)
        self.profile_name = profile_name
        self._settings = settings
        self.description = f"{profile_name} artifact {self.path.name} (runs in its vendor tool)"

    def run(self, batch: Batch) -> np.ndarray:
        raise RuntimeFailure(
            f"profile '{self.profile_name}' builds an artifact that only its vendor tool can "
            "run; Kiln cannot compute logits from it here",
            path=self.path,
            hint="speed figures come from the profile's benchmark command; for accuracy set "
            "toolchain.evaluate_with when a local runtime can read the artifact",
        )

    def settings(self) -> dict[str, Any]:
        return dict(self._settings)


def _openvino(*args: Any, **kwargs: Any) -> CompiledModel:
    from kiln_lab.core.runtime_openvino import OpenVINOModel

    return OpenVINOModel(*args, **kwargs)


def _paddle(*args: Any, **kwargs: Any) -> CompiledModel:
    from kiln_lab.core.runtime_paddle import PaddleInferenceModel

    return PaddleInferenceModel(*args, **kwargs)


RuntimeFactory = Callable[..., CompiledModel]
RUNTIMES: dict[str, RuntimeFactory] = {
    "torch": TorchModel,
    "torchscript": TorchScriptModel,
    "onnxruntime": OnnxRuntimeModel,
    "openvino": _openvino,
    "paddle": _paddle,
}


def get_runtime(name: str) -> RuntimeFactory:
    try:
        return RUNTIMES[name]
    except KeyError:
        raise ConfigError(
            f"unknown runtime {name!r}", hint=f"known runtimes: {', '.join(sorted(RUNTIMES))}"
        ) from None


def load_artifact(
    runtime: str,
    path: Path,
    *,
    threads: int | None = None,
    input_names: tuple[str, ...] | None = None,
) -> CompiledModel:
    """A compiled file opened by the runtime that reads it (ONNX, OpenVINO, Paddle)."""
    if runtime == "onnxruntime":
        return OnnxRuntimeModel(path, intra_op_threads=threads)
    if runtime == "openvino":
        return _openvino(path, threads=threads)
    if runtime == "paddle":
        return _paddle(path, threads=threads)
    if runtime == "torchscript":
        if not input_names:
            raise ConfigError("a TorchScript artifact needs its input names")
        return TorchScriptModel(path, input_names, threads=threads)
    raise ConfigError(
        f"runtime {runtime!r} cannot open a compiled file",
        hint="use onnxruntime, openvino, paddle or torchscript",
    )
