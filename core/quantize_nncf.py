"""int8 for OpenVINO: NNCF's post-training quantization of the ONNX export.

OpenVINO runs int8 on the CPU's VNNI and AMX units only from a model with
FakeQuantize nodes, and NNCF (``nncf`` on PyPI, OpenVINO's own compression library)
is how one is made: ``nncf.quantize`` calibrates activation ranges on a few batches and
inserts them where OpenVINO's CPU plugin has int8 kernels. The transformer model type
keeps the parts that lose accuracy in int8 (Softmax, LayerNorm and the attention
score products) in float, the same choice Kiln's ONNX Runtime recipe makes.

The quantized model is saved as OpenVINO IR (``model.xml`` + ``model.bin``) in a cache
entry keyed by the source graph, the calibration data and the NNCF and OpenVINO
versions, published whole like every other artifact.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from kiln_lab.core.errors import ToolchainMissing
from kiln_lab.core.export import build_entry, cache_key, file_sha256
from kiln_lab.core.quantize import CalibrationSet

log = logging.getLogger(__name__)

NNCF_RECIPE_VERSION = 1
INSTALL_HINT = "pip install 'kiln-lab[openvino-int8]' (NNCF, OpenVINO's quantization library)"


def nncf_version() -> str:
    """NNCF's version, or ToolchainMissing saying how to install it."""
    try:
        return version("nncf")
    except PackageNotFoundError:
        raise ToolchainMissing(
            "int8 on OpenVINO needs NNCF, which is not installed", hint=INSTALL_HINT
        ) from None


def quantize_openvino(
    onnx_path: Path, calibration: CalibrationSet, input_names: Sequence[str]
) -> tuple[Path, bool, dict[str, Any]]:
    """The NNCF int8 IR of ``onnx_path``: ``(model.xml path, reused, meta)``."""
    key = cache_key(
        kind="nncf-int8",
        version=NNCF_RECIPE_VERSION,
        source=file_sha256(onnx_path),
        calibration=calibration.sha256,
        nncf=nncf_version(),
        openvino=version("openvino"),
    )

    def build(work: Path) -> dict[str, Any]:
        import nncf
        import openvino as ov

        log.info(
            "quantizing with NNCF (transformer preset) on %d calibration samples",
            calibration.samples,
        )
        model = ov.Core().read_model(str(onnx_path))
        dataset = nncf.Dataset(
            list(calibration.batches),
            lambda batch: {n: np.asarray(batch[n], dtype=np.int64) for n in input_names},
        )
        # NNCF draws rich progress bars on stdout, which has no switch to turn them off:
        # they would land in `--json` output of an in-process run (bench/, a local
        # matrix) or as escape codes in the worker's log. Its warnings go through
        # logging and are kept.
        with contextlib.redirect_stdout(io.StringIO()):
            quantized = nncf.quantize(
                model,
                dataset,
                model_type=nncf.ModelType.TRANSFORMER,
                subset_size=len(calibration.batches),
            )
        ov.save_model(quantized, str(work / "model.xml"), compress_to_fp16=False)
        fake_quantize = sum(1 for op in quantized.get_ops() if op.get_type_name() == "FakeQuantize")
        return {
            "recipe": {"kind": "nncf", "model_type": "transformer"},
            "calibration_sha256": calibration.sha256,
            "fake_quantize_nodes": fake_quantize,
        }

    path, meta, reused = build_entry(
        key,
        build,
        what="the NNCF int8 model",
        failure="NNCF quantization failed",
        hint="run with --debug for NNCF's message; --profile cpu-onnxruntime builds int8 "
        "without NNCF",
        source=onnx_path,
        needs=("fake_quantize_nodes",),
        model_file="model.xml",
    )
    return path, reused, meta
