"""int8: quantisation recipes, the pipeline's int8 path, and the accuracy guard's repair."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest

from kiln_lab.core.errors import ConfigError
from kiln_lab.core.events import StageFinished
from kiln_lab.core.export import export_onnx
from kiln_lab.core.guard import guard_int8
from kiln_lab.core.models.families import get_family
from kiln_lab.core.pipeline import run_pipeline
from kiln_lab.core.quantize import (
    CalibrationSet,
    DynamicInt8,
    StaticInt8,
    quantize,
    with_exclusions,
)
from kiln_lab.core.runconfig import RunConfig

OUTLIER_NODE = "/bert/encoder/layer.1/output/dense/MatMul"


def _outlier_model():
    """A tiny BERT whose one FFN channel is a constant 400: invisible in fp32 (the next
    layer's weights ignore it), ruinous in int8 (it sets the per-tensor scale)."""
    import torch

    spec = get_family("bert")
    config = spec.build_config(
        labels=["O", "B-PER", "I-PER", "B-LOC", "I-LOC"],
        vocab_size=500,
        hidden_size=64,
        num_layers=2,
        num_heads=4,
        intermediate_size=128,
        max_seq_len=64,
    )
    torch.manual_seed(0)
    model = (
        spec.model_class("token-classification")
        .from_config(config, attn_implementation="eager")
        .eval()
    )
    with torch.no_grad():
        model.classifier.weight.mul_(60)  # confident predictions: no near-ties to flip
        layer = model.bert.encoder.layer[1]
        layer.output.dense.weight.mul_(4)  # the FFN path matters to the output
        layer.intermediate.dense.weight[7].zero_()
        layer.intermediate.dense.bias[7] = 400.0  # the outlier channel...
        layer.output.dense.weight[:, 7].zero_()  # ...that fp32 never uses
    digest = hashlib.sha256(
        b"".join(t.numpy().tobytes() for t in model.state_dict().values())
    ).hexdigest()
    return spec, model, digest


def _batches(seed: int, count: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        ids = rng.integers(5, 499, (16, 24)).astype(np.int64)
        out.append(
            {
                "input_ids": ids,
                "attention_mask": np.ones_like(ids),
                "token_type_ids": np.zeros_like(ids),
            }
        )
    return out


def test_guard_finds_the_outlier_and_repairs_int8(kiln_home: Path) -> None:
    import onnxruntime as ort

    spec, model, digest = _outlier_model()
    path, _ = export_onnx(model, input_names=spec.input_names, weights_sha256=digest)
    calibration = CalibrationSet.from_batches(_batches(0, 4), "random ids")
    evaluation = _batches(1, 8)
    # Ground truth = the fp32 graph's own predictions, so any drop is int8's doing.
    reference = ort.InferenceSession(str(path))
    truth = [reference.run(None, b)[0].argmax(-1) for b in evaluation]

    def score(candidate: Path) -> tuple[float, float]:
        session = ort.InferenceSession(str(candidate))
        start = time.perf_counter()
        hits = [
            (session.run(None, b)[0].argmax(-1) == t).mean()
            for b, t in zip(evaluation, truth, strict=True)
        ]
        return float(np.mean(hits)), 128 / (time.perf_counter() - start)

    report = guard_int8(
        float_path=path,
        quant_source=path,
        recipe=StaticInt8(samples=64),
        calibration=calibration,
        probe_batches=calibration.batches[:2],
        input_names=spec.input_names,
        score=score,
        metric_name="token_accuracy",
        budget=2.0,
    )
    first, last = report.steps[0], report.steps[-1]
    assert report.float_metric == 1.0
    assert first.drop_points > 3.0 and not first.within_budget  # full int8 breaks the budget
    assert report.sensitivity[0][0] == OUTLIER_NODE  # the cause is ranked first
    assert last.within_budget and report.repaired
    assert last.kept_in_float == (OUTLIER_NODE,)  # and keeping it alone in float repairs it
    assert report.to_dict()["kept_in_float"] == [OUTLIER_NODE]


def test_recipes_validate_and_merge_exclusions() -> None:
    with pytest.raises(ConfigError, match="calibration method"):
        StaticInt8(method="mse")  # type: ignore[arg-type]
    recipe = with_exclusions(StaticInt8(nodes_to_exclude=("a",)), ["b", "a"])
    assert recipe.nodes_to_exclude == ("a", "b") and isinstance(recipe, StaticInt8)
    assert with_exclusions(DynamicInt8(), ["x"]).nodes_to_exclude == ("x",)


def test_quantized_artifacts_are_cached(kiln_home: Path) -> None:
    spec, model, digest = _outlier_model()
    path, _ = export_onnx(model, input_names=spec.input_names, weights_sha256=digest)
    calibration = CalibrationSet.from_batches(_batches(0, 2), "random ids")
    first = quantize(
        path, StaticInt8(samples=32), calibration=calibration, input_names=spec.input_names
    )
    again = quantize(
        path, StaticInt8(samples=32), calibration=calibration, input_names=spec.input_names
    )
    assert not first.cached and again.cached and first.path == again.path
    assert first.calibration_sha256 == calibration.sha256 and first.quantized_nodes > 0
    dynamic = quantize(path, DynamicInt8(), input_names=spec.input_names)
    assert dynamic.path != first.path


@pytest.mark.parametrize("variant", ["static", "dynamic"])
def test_int8_pipeline(variant: str, tiny_assets: Path, kiln_home: Path) -> None:
    events: list = []
    result = run_pipeline(
        RunConfig(
            model="tiny-ner-bert",
            precision="int8",
            limit=48,
            quantization=variant,
            guard_samples=48,
            # Dynamic int8 calibrates nothing, so Kiln refuses a calibration size for it.
            **({"calibration_samples": 32} if variant == "static" else {}),  # type: ignore[arg-type]
        ),
        "int8",
        events.append,
    )
    quant = result["quantization"]
    assert quant["recipe"] == variant and quant["quantized_nodes"] > 0
    assert len(quant["calibration"]["sha256"]) == 64
    assert result["parity"]["status"] in ("pass", "warn")
    assert "guard" in result and result["guard"]["steps"]
    stages = [e.stage_name for e in events if isinstance(e, StageFinished)]
    assert "quantize" in stages and "optimize" in stages


def test_cache_ls_and_clear(tiny_assets: Path, kiln_home: Path) -> None:
    from kiln_lab.core import cache

    run_pipeline(
        RunConfig(
            model="tiny-ner-bert",
            precision="int8",
            quantization="static",
            limit=16,
            guard=False,
            calibration_samples=16,
        ),
        "c",
        lambda e: None,
    )
    kinds = {e.kind for e in cache.entries()}
    assert {"onnx export", "fused graph", "int8 static"} <= kinds
    assert all(e.complete for e in cache.entries())
    removed, freed = cache.clear()
    assert removed >= 3 and freed > 0 and cache.entries() == []


def test_fp16_keeps_layernorm_and_softmax_in_fp32(
    tiny_assets: Path, kiln_home: Path, tmp_path: Path
) -> None:
    """fp16 conversion on an ONNX Runtime profile (a test profile: CPU does not speed it up,
    which is why cpu-onnxruntime does not offer it, but CPU can check the conversion)."""
    import onnx

    profile = tmp_path / "ort-fp16-check.yaml"
    profile.write_text(
        "name: ort-fp16-check\ntitle: fp16 conversion check\n"
        "runtime: onnxruntime\nprecisions: [fp32, fp16]\n"
    )
    result = run_pipeline(
        RunConfig(model="tiny-ner-bert", profile=str(profile), precision="fp16", limit=16),
        "fp16",
        lambda e: None,
    )
    quant = result["quantization"]
    assert quant["recipe"] == "fp16" and "Softmax" in quant["kept_fp32"]
    graph = onnx.load(quant["path"]).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in graph.initializer)
    assert result["parity"]["status"] in ("pass", "warn")


def test_openvino_int8_through_nncf(tiny_assets: Path, kiln_home: Path) -> None:
    """OpenVINO's own int8: NNCF's FakeQuantize IR, cached like every artifact, run by
    the CPU plugin, checked for parity and scored like any other build."""
    pytest.importorskip("nncf", reason="the openvino-int8 extra (NNCF) is not installed")
    config = RunConfig(
        model="tiny-ner-bert",
        profile="cpu-openvino",
        precision="int8",
        limit=24,
        calibration_samples=16,
        paired=False,
    )
    events: list = []
    result = run_pipeline(config, "ov-int8", events.append)
    quant = result["quantization"]
    assert quant["recipe"] == "nncf" and quant["quantized_nodes"] > 0
    assert quant["path"].endswith("model.xml") and not quant["cached"]
    assert result["parity"]["status"] in ("pass", "warn") and result["metrics"]
    again = run_pipeline(config, "ov-int8-again", lambda e: None)
    assert again["quantization"]["cached"] and again["metrics"] == result["metrics"]
