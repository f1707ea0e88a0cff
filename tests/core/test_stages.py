"""One stage at a time, on hand-made inputs, and the runtimes' declared needs.

Stages hand each other typed, frozen outputs, so a test can call a single stage
without running the ones before it, and a runtime's needs are asked of its class
rather than spelled as ``if runtime == ...`` in the stages.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from kiln_lab.core.events import StageFinished, StageSkipped, StageStarted
from kiln_lab.core.pipeline import run_pipeline
from kiln_lab.core.runconfig import RunConfig
from kiln_lab.core.runtimes import RUNTIMES, CompiledModel, Graphs, get_runtime
from kiln_lab.core.stages import STAGES, compile, load, optimize, quantize, resolve, verify
from kiln_lab.core.stages.context import StageContext

CORE = Path(__file__).resolve().parents[2] / "core"


def _context(events: list, **options: object) -> StageContext:
    config = RunConfig(model="tiny-ner-bert", limit=16, batch_size=8, **options)  # type: ignore[arg-type]
    return StageContext(config, "stage-test", events.append)


def test_the_pipeline_runs_the_stages_in_the_one_declared_order(
    tiny_assets: Path, kiln_home: Path
) -> None:
    events: list = []
    run_pipeline(RunConfig(model="tiny-ner-bert", limit=16, batch_size=8), "order", events.append)
    seen = [e.stage_name for e in events if isinstance(e, StageStarted | StageSkipped)]
    assert seen == list(STAGES)


def test_quantize_alone_skips_where_the_runtime_builds_its_own_precision(
    tiny_assets: Path, kiln_home: Path
) -> None:
    """No model is loaded: the runtime's answer is enough to skip, with the reason."""
    events: list = []
    ctx = _context(events, profile="cpu-torch", precision="bf16")
    resolved = resolve.preflight(ctx.config)
    graphs = Graphs(onnx=Path("never-read.onnx"))
    out = quantize.run(ctx, resolved, None, graphs)  # type: ignore[arg-type]
    assert out.graphs is graphs and out.summary is None
    (skip,) = [e for e in events if isinstance(e, StageSkipped)]
    assert skip.reason == "cpu-torch builds bf16 in its compile step"


def test_optimize_alone_leaves_a_torch_run_without_graphs(
    tiny_assets: Path, kiln_home: Path
) -> None:
    events: list = []
    ctx = _context(events, profile="cpu-torch")
    resolved = resolve.preflight(ctx.config)
    assert optimize.run(ctx, resolved, None, Graphs()) == Graphs()  # type: ignore[arg-type]
    assert [e.reason for e in events if isinstance(e, StageSkipped)] == [
        "the profile's runtime compiles the model itself"
    ]


class _Drifting(CompiledModel):
    """A hand-made "built model": the reference's logits plus a fixed offset."""

    def __init__(self, reference: CompiledModel, offset: float) -> None:
        self.reference = reference
        self.offset = offset
        self.description = f"reference + {offset}"

    def run(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return self.reference.run(batch) + self.offset


@pytest.mark.parametrize(("offset", "status"), [(0.0, "pass"), (0.5, "warn")])
def test_verify_alone_judges_a_hand_made_model(
    offset: float, status: str, tiny_assets: Path, kiln_home: Path
) -> None:
    from kiln_lab.core.runtimes.torch import TorchModel

    events: list = []
    ctx = _context(events, profile="cpu-onnxruntime")
    resolved = resolve.preflight(ctx.config)
    loaded = load.run(ctx, resolved)
    model = _Drifting(TorchModel(loaded.model.model, loaded.input_names), offset)
    built = compile.Compiled(model, {}, request=None)  # type: ignore[arg-type]
    report = verify.run(ctx, resolved, loaded, built)
    assert report is not None and report.status == status
    assert report.max_abs_diff == pytest.approx(offset, abs=1e-5)
    assert any(isinstance(e, StageFinished) and e.stage_name == "verify" for e in events)


def test_every_runtime_says_what_it_needs() -> None:
    assert set(RUNTIMES) == {
        "torch",
        "torchscript",
        "onnxruntime",
        "openvino",
        "paddle",
        "external",
    }
    for name, runtime in RUNTIMES.items():
        assert runtime.name == name and runtime.precisions
    assert [n for n, r in RUNTIMES.items() if r.fuses_attention] == ["onnxruntime"]
    assert get_runtime("torch").is_reference("fp32")
    assert not get_runtime("torch").is_reference("bf16")
    assert get_runtime("torchscript").export_precision("fp16") == "fp16"
    assert get_runtime("external").export_precision("fp16") == "fp32"


def test_onnxruntime_converts_int8_and_fp16_from_the_graph_each_needs(
    tiny_assets: Path, kiln_home: Path
) -> None:
    from kiln_lab.core.profiles import get_profile

    runtime = get_runtime("onnxruntime")
    cpu, tensorrt = get_profile("cpu-onnxruntime"), get_profile("cuda-tensorrt")
    assert runtime.conversion(cpu, "int8").kind == "int8"
    assert runtime.conversion(cpu, "fp32").kind is None
    assert runtime.conversion(tensorrt, "fp16").kind is None  # TensorRT builds fp16 itself
    graphs = Graphs(onnx=Path("plain.onnx"), fused=Path("fused.onnx"))
    assert runtime.conversion_source(cpu, "dynamic", graphs) == graphs.fused
    assert runtime.conversion_source(cpu, "static", graphs) == graphs.onnx
    assert runtime.conversion_source(cpu, "fp16", graphs) == graphs.onnx


def test_an_external_int8_build_says_why_the_guard_cannot_repair_it() -> None:
    """No documented per-layer float setting in the vendor compiler: the run says which,
    in the profile's own words, instead of pretending the guard repaired anything."""
    from kiln_lab.core.profiles import get_profile

    vacc = get_profile("vastai-vacc")
    conversion = get_runtime("external").conversion(vacc, "int8")
    assert conversion.kind is None
    assert vacc.int8.no_float_repair and vacc.int8.no_float_repair in conversion.reason
    assert "cannot repair" in conversion.reason


def test_no_stage_tests_a_runtime_by_name() -> None:
    """Per-runtime behaviour lives in the runtime's class: a stage that compares
    ``profile.runtime`` with a string would be a second place to change."""
    offenders = []
    for path in (CORE / "stages").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare) and any(
                isinstance(side, ast.Attribute) and side.attr == "runtime"
                for side in (node.left, *node.comparators)
            ):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
