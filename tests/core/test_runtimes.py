"""Runtimes that really run: one body over family x runtime x precision, on tiny models."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from kiln_lab.core.events import ArtifactWritten, StageFinished, StageSkipped
from kiln_lab.core.pipeline import run_pipeline
from kiln_lab.core.profiles import get_profile
from kiln_lab.core.runconfig import RunConfig
from kiln_lab.core.runtimes import FixedShapeModel
from kiln_lab.core.runtimes.onnxruntime import OnnxRuntimeModel

CASES = [
    ("tiny-ner-bert", "cpu-torch", "bf16"),
    ("tiny-ner-bert", "cpu-torchscript", "fp32"),
    ("tiny-senti-roberta", "cpu-torchscript", "bf16"),
    ("tiny-ner-bert", "cpu-openvino", "fp32"),
    ("tiny-ner-xlmr", "cpu-openvino", "fp32"),
    ("tiny-senti-roberta", "cpu-openvino", "bf16"),
]


@pytest.mark.parametrize(("model", "profile", "precision"), CASES)
def test_runtime_builds_verifies_and_evaluates(
    model: str, profile: str, precision: str, tiny_assets: Path, kiln_home: Path
) -> None:
    events: list = []
    config = RunConfig(model=model, profile=profile, precision=precision, limit=16, batch_size=8)
    result = run_pipeline(config, "rt", events.append)
    parity = result["parity"]
    assert parity["status"] == "pass", parity
    metric = "entity_f1" if "ner" in model else "accuracy"
    assert 0.0 <= result["metrics"][metric] <= 1.0
    assert result["throughput"]["samples_per_s"] > 0
    settings = result["runtime_settings"]
    assert isinstance(settings["intra_op_threads"], int) and settings["intra_op_threads"] >= 1
    assert settings["cpu_affinity"] >= 1
    skipped = {e.stage_name: e.reason for e in events if isinstance(e, StageSkipped)}
    if precision != "fp32":
        assert "builds" in skipped["quantize"] and precision in skipped["quantize"]
    compile_summary = next(
        e.summary for e in events if isinstance(e, StageFinished) and e.stage_name == "compile"
    )
    assert compile_summary["precision"] == precision
    if profile == "cpu-openvino":
        # OpenVINO defaults to bf16 on AVX-512 BF16 / AMX CPUs: fp32 must be asked for.
        wanted = {"fp32": "f32", "bf16": "bf16"}[precision]
        assert re.search(wanted, str(settings["inference_precision"]))
    if profile == "cpu-torchscript":
        traced = [
            e for e in events if isinstance(e, ArtifactWritten) and e.artifact == "torchscript"
        ]
        assert traced and traced[0].path.endswith(".pt")
    if profile == "cpu-torch":
        assert "export" in skipped


def test_torch_bf16_leaves_the_reference_model_alone(tiny_assets: Path) -> None:
    from kiln_lab.core.models import get_card, load_model
    from kiln_lab.core.runtimes.torch import TorchModel

    loaded = load_model(get_card("tiny-ner-bert"))
    before = next(loaded.model.parameters()).dtype
    model = TorchModel(loaded.model, loaded.family.input_names, precision="bf16")
    ids = np.full((2, 8), 7, dtype=np.int64)
    batch = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": 0 * ids}
    assert model.run(batch).dtype == np.float32
    assert next(loaded.model.parameters()).dtype == before
    assert model.settings()["precision"] == "bf16"


def test_fixed_shape_model_pads_and_slices(tiny_assets: Path, kiln_home: Path) -> None:
    from kiln_lab.core.export import export_onnx
    from kiln_lab.core.models import get_card, load_model

    loaded = load_model(get_card("tiny-ner-bert"))
    names = loaded.family.input_names
    dynamic, _ = export_onnx(loaded.model, input_names=names, weights_sha256=loaded.weights_sha256)
    static, _ = export_onnx(
        loaded.model, input_names=names, weights_sha256=loaded.weights_sha256, static_shape=(4, 32)
    )
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 100, size=(6, 20), dtype=np.int64)
    mask = np.ones_like(ids)
    mask[1, 12:] = 0
    batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    expected = OnnxRuntimeModel(dynamic).run(batch)
    fixed = FixedShapeModel(OnnxRuntimeModel(static), 4, 32)
    got = fixed.run(batch)
    assert got.shape == expected.shape == (6, 20, 7)
    np.testing.assert_allclose(got[mask.astype(bool)], expected[mask.astype(bool)], atol=1e-4)
    assert fixed.settings()["static_shape"] == [4, 32]


def test_kiln_bench_prints_what_the_profile_parses(
    tiny_assets: Path, kiln_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kiln_lab.core.export import export_onnx
    from kiln_lab.core.models import get_card, load_model
    from kiln_lab.core.toolchain import parse_figures
    from kiln_lab.tui.commands.kiln_bench import main

    loaded = load_model(get_card("tiny-senti-roberta"))
    path, _ = export_onnx(
        loaded.model,
        input_names=loaded.family.input_names,
        weights_sha256=loaded.weights_sha256,
    )
    for runtime in ("onnxruntime", "openvino"):
        code = main(
            [
                "--model",
                str(path),
                "--runtime",
                runtime,
                "--batch",
                "2",
                "--seq-len",
                "16",
                "--iterations",
                "4",
                "--warmup",
                "1",
                "--threads",
                "1",
            ]
        )
        assert code == 0
        lines = capsys.readouterr().out.splitlines()
        figures = parse_figures(lines, get_profile("cpu-external-ort").toolchain.benchmark.figures)
        assert set(figures) == {
            "samples_per_s",
            "latency_mean_ms",
            "latency_p50_ms",
            "latency_p90_ms",
            "latency_p99_ms",
        }
        assert figures["latency_p99_ms"] >= figures["latency_p50_ms"] > 0
    assert main(["--model", str(path.parent / "missing.onnx")]) == 2


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_a_silent_cpu_fallback_is_refused(tiny_assets: Path, kiln_home: Path) -> None:
    """Asking ONNX Runtime for a provider it lacks must not quietly measure the CPU."""
    from kiln_lab.core.errors import RuntimeFailure
    from kiln_lab.core.export import export_onnx
    from kiln_lab.core.models import get_card, load_model

    loaded = load_model(get_card("tiny-senti-roberta"))
    path, _ = export_onnx(
        loaded.model, input_names=loaded.family.input_names, weights_sha256=loaded.weights_sha256
    )
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(RuntimeFailure, match="did not enable CUDAExecutionProvider"):
        OnnxRuntimeModel(path, providers=("CUDAExecutionProvider", "CPUExecutionProvider"))


GPU_CASES = [
    ("cuda-torch", "fp32"),
    ("cuda-torch", "fp16"),
    ("cuda-torch", "bf16"),
    ("cuda-onnxruntime", "fp32"),
    ("cuda-onnxruntime", "fp16"),
    ("cuda-tensorrt", "fp32"),
    ("cuda-tensorrt", "fp16"),
]


@pytest.mark.gpu
@pytest.mark.parametrize(("profile", "precision"), GPU_CASES)
def test_gpu_profiles_run(profile: str, precision: str, tiny_assets: Path, kiln_home: Path) -> None:
    from kiln_lab.core.availability import check_availability

    status = check_availability(get_profile(profile))
    if not status.available:
        pytest.skip(status.reason)
    events: list = []
    config = RunConfig(
        model="tiny-ner-bert", profile=profile, precision=precision, limit=32, batch_size=8
    )
    result = run_pipeline(config, "gpu", events.append)
    assert result["parity"]["status"] in ("pass", "warn"), result["parity"]
    assert result["throughput"]["samples_per_s"] > 0
    assert "cuda" in str(result["runtime_settings"]).lower() or "CUDA" in result["runtime"]


def test_openvino_says_where_the_time_goes(tiny_assets: Path, kiln_home: Path) -> None:
    """OpenVINO's PERF_COUNT, read into the same shape as ONNX Runtime's profiler."""
    from kiln_lab.core.benchmark import synthetic_batch
    from kiln_lab.core.export import export_onnx
    from kiln_lab.core.models import get_card, load_model
    from kiln_lab.core.runtimes.openvino import OpenVINOModel

    loaded = load_model(get_card("tiny-ner-bert"))
    path, _ = export_onnx(
        loaded.model,
        input_names=loaded.family.input_names,
        weights_sha256=loaded.weights_sha256,
    )
    model = OpenVINOModel(path, threads=1)
    batch = synthetic_batch(2, 16, model.input_names, int(loaded.model.config.vocab_size))
    breakdown = model.op_breakdown([batch, batch])
    assert breakdown is not None and breakdown["runs"] == 2 and breakdown["total_ms_per_run"] > 0
    assert any(o["op_type"].startswith("FullyConnected") for o in breakdown["ops"])
    assert sum(o["share"] for o in breakdown["ops"]) == pytest.approx(1.0)
