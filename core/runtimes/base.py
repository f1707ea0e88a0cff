"""What every runtime shares: the compiled-model interface and the runtime class.

A :class:`CompiledModel` takes a padded numpy batch and returns logits as numpy, so
the evaluation loop, the parity check and the benchmark never care which runtime
runs. A :class:`Runtime` says what its compile step needs from the stages before it
(which graphs to export, which rewrites, which precision conversions) and builds the
compiled model from a :class:`BuildRequest`. Each runtime is one module beside this
one, registered by name in :mod:`kiln_lab.core.runtimes`; the stages ask the
runtime instead of testing the runtime's name.
"""

from __future__ import annotations

import functools
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from kiln_lab.core.errors import ConfigError, RuntimeFailure
from kiln_lab.core.events import Event

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from kiln_lab.core.benchmark import BenchmarkPlan, CellResult
    from kiln_lab.core.profiles import Profile
    from kiln_lab.core.runconfig import RunConfig

log = logging.getLogger(__name__)

Batch = Mapping[str, np.ndarray]


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

    batches_per_call: int = 1
    """Batches worth handing over at once (:meth:`run_many`): a tool that runs over files
    pays its start-up per call, an in-process session nothing."""

    def run_many(self, batches: Sequence[Batch]) -> list[np.ndarray]:
        """Logits for several batches; the same as :meth:`run` on each, by default."""
        return [self.run(batch) for batch in batches]

    def op_breakdown(self, batches: Sequence[Batch]) -> dict[str, Any] | None:
        """Time per operator type over ``batches`` from the runtime's own profiler, on a
        separate profiled session (op_profile.py); None where Kiln reads no profiler."""
        return None

    def new_instance(self) -> CompiledModel:
        """Another instance for a multi-instance benchmark; runtimes whose sessions are not
        safe to share return a fresh one, the rest share this one."""
        return self

    def process_cell_runner(
        self, plan: BenchmarkPlan, input_names: Sequence[str], vocab_size: int
    ) -> Callable[[int, int], CellResult] | None:
        """Measures one benchmark cell across ``plan.processes`` processes, where this
        runtime can start its model in another process; None: one process only."""
        return None


def cpu_affinity() -> int:
    """CPUs this process may run on (what a thread count should be compared with)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def physical_cores() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


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

    def op_breakdown(self, batches: Sequence[Batch]) -> dict[str, Any] | None:
        shape = (self.batch_size, self.seq_len)
        if any(next(iter(b.values())).shape != shape for b in batches):
            return None  # the compiled shape only: profiling padded chunks would mislead
        return self.inner.op_breakdown(batches)

    def settings(self) -> dict[str, Any]:
        return self.inner.settings() | {"static_shape": [self.batch_size, self.seq_len]}


@dataclass(frozen=True)
class Graphs:
    """The model files a run has made so far, which compile steps read.

    ``onnx`` is the exported fp32 graph (simplified where the profile asks), ``fused``
    the same with ONNX Runtime's transformer fusions, ``converted`` the graph the
    quantize stage converted to the run's precision (int8 or fp16).
    """

    onnx: Path | None = None
    fused: Path | None = None
    converted: Path | None = None
    torchscript: Path | None = None


@dataclass(frozen=True)
class BuildRequest:
    """Everything a runtime's compile step may use, handed over by the compile stage."""

    profile: Profile
    precision: str
    reference_loader: Callable[[], PreTrainedModel]
    """Builds the fp32 PyTorch model (the torch runtime runs it; others read the exports)."""
    config: Any
    """The model's transformers config (shapes, vocabulary), without building the model."""
    input_names: tuple[str, ...]
    graphs: Graphs
    batch_size: int
    seq_len: int
    model_name: str = ""
    task: str = ""
    """The card's task: token-classification logits have a sequence axis."""
    calibration: Callable[[int], list[dict[str, np.ndarray]]] | None = None
    """Calibration samples padded to the given sequence length, asked for only if used."""
    cancelled: Callable[[], bool] = lambda: False
    emit: Callable[[Event], None] = lambda event: None
    stage: str = "compile"

    @property
    def static_shape(self) -> tuple[int, int] | None:
        return (self.batch_size, self.seq_len) if self.profile.static_shapes else None

    @property
    def reference(self) -> PreTrainedModel:
        """The fp32 PyTorch model, built on first use (exports on a cache hit never do)."""
        return self.reference_loader()

    def fixed(self, model: CompiledModel) -> CompiledModel:
        """``model`` padded to the profile's static shape, where it has one."""
        shape = self.static_shape
        return FixedShapeModel(model, *shape) if shape else model


@dataclass(frozen=True)
class Built:
    """A runtime's compile step: the model, and for a vendor tool what it ran."""

    model: CompiledModel
    artifact: Path | None = None
    toolchain: dict[str, Any] | None = None


@dataclass(frozen=True)
class Conversion:
    """What the quantize stage does for a runtime at a precision: ``int8`` or ``fp16``
    conversion of the ONNX graph, or nothing (``kind`` None) for the ``reason`` given."""

    kind: str | None
    reason: str = ""


class Runtime(ABC):
    """One runtime: what it needs from the stages before compile, and its build."""

    name: ClassVar[str]
    precisions: ClassVar[frozenset[str]]
    """The precisions this runtime can build (a profile offers a subset)."""
    fuses_attention: ClassVar[bool] = False
    """Whether the optimize stage should run ONNX Runtime's transformer fusions for it."""

    def exports(self, profile: Profile) -> tuple[str, ...]:
        """Which portable graphs its compile step reads: ``onnx``, ``torchscript``."""
        return ("onnx",)

    def export_precision(self, precision: str) -> str:
        """The precision an export is traced at (vendor compilers lower fp32 themselves)."""
        return "fp32"

    def is_reference(self, precision: str) -> bool:
        """True where the built model is the fp32 PyTorch reference itself (no parity)."""
        return False

    def batch_call_cost(self, profile: Profile) -> float | None:
        """What one more batch costs, in padded tokens, when the plan cuts length-sorted
        batches short where the lengths jump (:func:`kiln_lab.core.encode.cut_by_length`);
        None keeps every batch full. Full by default: OpenVINO compiles every new input
        shape, a tool run per call costs seconds, accelerators were not measured."""
        return None

    def conversion(self, profile: Profile, precision: str) -> Conversion:
        """What the quantize stage converts for this runtime at ``precision``."""
        if precision == "fp32":
            return Conversion(None, "fp32 keeps the weights as trained")
        return Conversion(None, f"{profile.name} builds {precision} in its compile step")

    def require(self, profile: Profile, precision: str) -> None:  # noqa: B027 - optional hook
        """Raise ``ToolchainMissing`` when a library this build needs is absent, so the
        run is refused before it starts (preflight) rather than in its quantize stage."""

    def conversion_source(self, profile: Profile, kind: str, graphs: Graphs) -> Path:
        """The graph a conversion starts from (asked only where :meth:`conversion` said)."""
        raise ConfigError(f"runtime {self.name!r} converts no graphs itself")

    @abstractmethod
    def build(self, request: BuildRequest) -> Built:
        """The compiled model at the request's precision."""

    def open(
        self, path: Path, *, threads: int | None = None, input_names: tuple[str, ...] = ()
    ) -> CompiledModel:
        """A compiled file opened by this runtime (a vendor profile's ``evaluate_with``)."""
        raise ConfigError(
            f"runtime {self.name!r} cannot open a compiled file",
            hint="use onnxruntime, openvino, paddle or torchscript",
        )

    def benchmarks_with_tool(
        self, *, grid_requested: bool, evaluated: bool, model: CompiledModel
    ) -> bool:
        """Whether the benchmark stage's figures come from an external tool."""
        return False

    def benchmark(
        self, request: BuildRequest, artifact: Path | None, config: RunConfig, weights_sha256: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The grid's plan and cells measured by the runtime's own tool (see
        :meth:`benchmarks_with_tool`)."""
        raise ConfigError(f"runtime {self.name!r} has no benchmark tool of its own")
