"""int8 quantisation with ONNX Runtime: one recipe type per variant, cached by content.

Static QDQ is calibrated on samples from the dataset's train split (MinMax, Entropy
or Percentile) and runs on the unfused graph, where every MatMul's activations get
quantised; dynamic quantisation runs on the fused graph, where it can use QAttention.
Both take the nodes and op types to keep in float, which is how the accuracy guard
and a profile's op-precision overrides repair a model that int8 breaks.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kiln_lab.core.errors import ConfigError
from kiln_lab.core.export import build_entry, cache_key, file_sha256
from kiln_lab.core.runconfig import CALIBRATION_METHODS, CalibrationMethod

log = logging.getLogger(__name__)

QUANTIZE_VERSION = 1
QUANTIZABLE_OPS = ("MatMul", "Gemm", "Attention")


@dataclass(frozen=True)
class DynamicInt8:
    """Weights int8 ahead of time, activations quantised per batch at run time."""

    per_channel: bool = False
    nodes_to_exclude: tuple[str, ...] = ()
    op_types_to_exclude: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return "dynamic"


@dataclass(frozen=True)
class StaticInt8:
    """Weights and activations int8, activation ranges from a calibration set (QDQ)."""

    method: CalibrationMethod = "minmax"
    samples: int = 200
    per_channel: bool = False
    nodes_to_exclude: tuple[str, ...] = ()
    op_types_to_exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.method not in CALIBRATION_METHODS:
            raise ConfigError(
                f"unknown calibration method {self.method!r}",
                hint=f"use one of: {', '.join(CALIBRATION_METHODS)}",
            )
        if self.samples < 1:
            raise ConfigError("calibration needs at least one sample")

    @property
    def kind(self) -> str:
        return "static"


Int8Recipe = DynamicInt8 | StaticInt8


def with_exclusions(recipe: Int8Recipe, nodes: Sequence[str]) -> Int8Recipe:
    """The same recipe, keeping ``nodes`` (in addition to its own list) in float."""
    merged = tuple(dict.fromkeys((*recipe.nodes_to_exclude, *nodes)))
    return type(recipe)(**{**asdict(recipe), "nodes_to_exclude": merged})


@dataclass(frozen=True)
class CalibrationSet:
    """Padded input batches drawn from the train split, with a hash of their content."""

    batches: tuple[dict[str, np.ndarray], ...]
    samples: int
    source: str
    sha256: str = field(default="")

    @classmethod
    def from_batches(cls, batches: Sequence[dict[str, np.ndarray]], source: str) -> CalibrationSet:
        digest = hashlib.sha256()
        samples = 0
        for batch in batches:
            for name in sorted(batch):
                digest.update(name.encode())
                digest.update(np.ascontiguousarray(batch[name]).tobytes())
            samples += int(next(iter(batch.values())).shape[0])
        return cls(tuple(batches), samples, source, digest.hexdigest())


class _Reader:
    """The tiny reader interface ONNX Runtime's calibrators pull batches from."""

    def __init__(self, batches: Sequence[dict[str, np.ndarray]], input_names: Sequence[str]):
        self._iter = iter([{k: b[k] for k in input_names} for b in batches])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iter, None)

    def rewind(self) -> None:  # pragma: no cover - calibrators do not rewind here
        pass


@dataclass(frozen=True)
class QuantizedModel:
    path: Path
    cached: bool
    recipe: dict[str, Any]
    calibration_sha256: str | None
    quantized_nodes: int


def quantizable_nodes(onnx_path: Path) -> list[str]:
    """Names of the nodes int8 would touch: the candidates for keeping in float."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return [n.name for n in model.graph.node if n.op_type in QUANTIZABLE_OPS and n.name]


def quantize(
    onnx_path: Path,
    recipe: Int8Recipe,
    *,
    calibration: CalibrationSet | None = None,
    input_names: Sequence[str] = (),
) -> QuantizedModel:
    """Quantise ``onnx_path`` per ``recipe`` (cached by graph, recipe and calibration)."""
    import onnxruntime

    if isinstance(recipe, StaticInt8) and calibration is None:
        raise ConfigError("static int8 needs a calibration set")
    calib_sha = calibration.sha256 if isinstance(recipe, StaticInt8) and calibration else None
    key = cache_key(
        kind="int8",
        version=QUANTIZE_VERSION,
        source=file_sha256(onnx_path),
        recipe=recipe.kind,
        options=asdict(recipe),
        calibration=calib_sha,
        ort=onnxruntime.__version__,
    )

    def build(work: Path) -> dict[str, Any]:
        # ORT writes ``<input>-inferred.onnx`` beside its input (shape inference): read
        # the source through a link inside the work directory, so a full disk or a kill
        # leaves that file in the work directory (removed) and never beside the
        # published cache entry the source belongs to.
        staging = work / ".source"
        staging.mkdir()
        (staging / "model.onnx").symlink_to(onnx_path.resolve())
        try:
            _run_quantizer(
                staging / "model.onnx", work / "model.onnx", recipe, calibration, input_names
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return {
            "recipe": {"kind": recipe.kind, **asdict(recipe)},
            "calibration_sha256": calib_sha,
            "quantized_nodes": _count_quantized(work / "model.onnx"),
            "calibration_samples": calibration.samples if calib_sha else None,
        }

    path, meta, reused = build_entry(
        key,
        build,
        what="the int8 model",
        failure="int8 quantisation failed",
        hint="try --quantization dynamic, or keep the failing op type in float via the "
        "profile's int8.keep_float.op_types",
        source=onnx_path,
        needs=("recipe", "quantized_nodes"),
    )
    return QuantizedModel(path, reused, meta["recipe"], calib_sha, meta["quantized_nodes"])


def _run_quantizer(
    source: Path,
    out: Path,
    recipe: Int8Recipe,
    calibration: CalibrationSet | None,
    input_names: Sequence[str],
) -> None:
    import onnx
    from onnxruntime import quantization as q

    extra = {"DefaultTensorType": onnx.TensorProto.FLOAT}
    excluded_ops = set(recipe.op_types_to_exclude)
    op_types = [op for op in QUANTIZABLE_OPS if op not in excluded_ops]
    if isinstance(recipe, DynamicInt8):
        log.info(
            "dynamic int8: weights per-%s, %d nodes kept in float",
            "channel" if recipe.per_channel else "tensor",
            len(recipe.nodes_to_exclude),
        )
        q.quantize_dynamic(
            str(source),
            str(out),
            weight_type=q.QuantType.QInt8,
            per_channel=recipe.per_channel,
            nodes_to_exclude=list(recipe.nodes_to_exclude),
            op_types_to_quantize=op_types,
            extra_options=extra,
        )
        return
    assert calibration is not None
    method = {
        "minmax": q.CalibrationMethod.MinMax,
        "entropy": q.CalibrationMethod.Entropy,
        "percentile": q.CalibrationMethod.Percentile,
    }[recipe.method]
    log.info(
        "static int8 (QDQ): %s calibration on %d samples (sha256 %s…), %d nodes kept in float",
        recipe.method,
        calibration.samples,
        calibration.sha256[:12],
        len(recipe.nodes_to_exclude),
    )
    q.quantize_static(
        str(source),
        str(out),
        _Reader(calibration.batches, input_names or list(calibration.batches[0])),
        quant_format=q.QuantFormat.QDQ,
        activation_type=q.QuantType.QUInt8,
        weight_type=q.QuantType.QInt8,
        per_channel=recipe.per_channel,
        calibrate_method=method,
        nodes_to_exclude=list(recipe.nodes_to_exclude),
        op_types_to_quantize=[op for op in op_types if op != "Attention"],
        extra_options=extra,
    )


def _count_quantized(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    ops = (
        "DynamicQuantizeLinear",
        "QuantizeLinear",
        "MatMulInteger",
        "QAttention",
        "DynamicQuantizeMatMul",
        "MatMulIntegerToFloat",
    )
    return sum(1 for n in model.graph.node if n.op_type in ops)


FP16_BLOCK_LIST = (
    "LayerNormalization",
    "SkipLayerNormalization",
    "EmbedLayerNormalization",
    "Softmax",
)
"""Ops kept in fp32 when converting to fp16: the usual overflow suspects."""


def to_float16(onnx_path: Path, *, op_block_list: Sequence[str] = FP16_BLOCK_LIST) -> Path:
    """An fp16 copy of the graph (inputs and outputs keep their types), cached by content."""
    import onnx
    import onnxruntime
    from onnxruntime.transformers.float16 import convert_float_to_float16

    key = cache_key(
        kind="fp16",
        version=QUANTIZE_VERSION,
        source=file_sha256(onnx_path),
        block=list(op_block_list),
        ort=onnxruntime.__version__,
    )

    def build(work: Path) -> dict[str, Any]:
        model = convert_float_to_float16(
            onnx.load(str(onnx_path)), keep_io_types=True, op_block_list=list(op_block_list)
        )
        onnx.save(model, str(work / "model.onnx"))
        return {"recipe": {"kind": "fp16", "op_block_list": list(op_block_list)}}

    path, _, reused = build_entry(
        key,
        build,
        what="the fp16 model",
        failure="fp16 conversion failed",
        hint="keep the failing op type in fp32 via the profile's keep_float.op_types",
        source=onnx_path,
    )
    if not reused:
        log.info("fp16 graph written (%s kept in fp32)", ", ".join(op_block_list))
    return path
