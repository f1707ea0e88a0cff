"""External tools for real: argument lists, streamed output, exit codes, artifacts, figures."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import pytest

from kiln_lab.core.commandline import render
from kiln_lab.core.errors import Cancelled, ToolchainMissing
from kiln_lab.core.events import ArtifactWritten, BenchmarkCellMeasured, StageFinished
from kiln_lab.core.profiles import get_profile, load_profile_file
from kiln_lab.core.runconfig import RunConfig
from kiln_lab.core.stages.context import StageContext, current_stage
from kiln_lab.core.toolchain import (
    ToolContext,
    ToolFailed,
    compile_with_tool,
    parse_figures,
    run_external_benchmark,
    run_tool,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "profiles"
PY = sys.executable


@pytest.mark.parametrize(
    "value",
    [
        "x; touch {pwned}",
        "$(touch {pwned})",
        "`touch {pwned}`",
        "a && touch {pwned} || true",
        "* ? [a-z] ~ > {pwned} < /dev/null | cat",
        "spaces  and\ttabs 'quotes' \"double\" \\ backslash\nnewline",
    ],
)
def test_a_value_with_shell_metacharacters_stays_one_inert_argument(
    value: str, tmp_path: Path
) -> None:
    pwned = tmp_path / "pwned"
    value = value.replace("{pwned}", str(pwned))
    argv = render([PY, "-c", "pass", "--model={output}", "{output}"], {"output": value})
    assert argv[-2:] == [f"--model={value}", value]
    code = "import sys, json; print(json.dumps(sys.argv[1:]))"
    run = run_tool([PY, "-c", code, *argv[-2:]], cwd=tmp_path)
    assert json.loads(run.lines[0]) == [f"--model={value}", value]
    assert not pwned.exists()


def test_placeholder_values_are_not_expanded_twice(tmp_path: Path) -> None:
    argv = render(["{output}", "{batch}"], {"output": "{batch}{env.HOME}", "batch": 8})
    assert argv == ["{batch}{env.HOME}", "8"]


def test_output_streams_line_by_line_into_the_log_with_the_stage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    code = (
        "import sys, time\n"
        "print('first', flush=True)\n"
        "print('to stderr', file=sys.stderr, flush=True)\n"
        "time.sleep(0.3)\n"
        "print('last', flush=True)\n"
    )
    stages: list[tuple[str | None, str]] = []

    class Spy(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            stages.append((current_stage.get(), record.getMessage()))

    spy = Spy()
    logging.getLogger("kiln_lab.core.toolrun").addHandler(spy)
    token = current_stage.set("compile")
    try:
        with caplog.at_level(logging.INFO, logger="kiln_lab.core.toolrun"):
            run = run_tool([PY, "-c", code], cwd=tmp_path)
    finally:
        current_stage.reset(token)
        logging.getLogger("kiln_lab.core.toolrun").removeHandler(spy)
    assert run.lines == ["first", "to stderr", "last"] and run.returncode == 0
    tool_lines = [m for s, m in stages if m.startswith("[python")]
    assert [m.split("] ", 1)[1] for m in tool_lines] == ["first", "to stderr", "last"]
    assert {s for s, _ in stages} == {"compile"}


def test_a_non_zero_exit_is_an_error_with_the_command_and_its_last_lines(tmp_path: Path) -> None:
    code = "import sys; print('reading model'); print('E: unsupported op Foo'); sys.exit(7)"
    with pytest.raises(ToolFailed) as info:
        run_tool([PY, "-c", code], cwd=tmp_path)
    message = info.value.message
    assert "exited with status 7" in message and "unsupported op Foo" in message
    assert "-c" in message  # the command is named


def test_a_missing_executable_says_so(tmp_path: Path) -> None:
    with pytest.raises(ToolchainMissing, match="kiln-no-such-tool"):
        run_tool(["kiln-no-such-tool", "--help"], cwd=tmp_path)


def test_cancel_and_timeout_end_the_tool(tmp_path: Path) -> None:
    sleeper = [PY, "-c", "import time; print('go', flush=True); time.sleep(60)"]
    start = time.monotonic()
    with pytest.raises(Cancelled):
        run_tool(sleeper, cwd=tmp_path, cancelled=lambda: time.monotonic() - start > 0.5)
    with pytest.raises(ToolFailed, match="did not finish within"):
        run_tool(sleeper, cwd=tmp_path, timeout_s=0.5)
    assert time.monotonic() - start < 20


def test_figures_are_read_with_the_profile_expressions() -> None:
    profile = get_profile("ascend-310p")
    lines = [
        "[INFO] -----------------Performance Summary------------------",
        "[INFO] NPU_compute_time (ms): min = 2.40, max = 2.60, mean = 2.456, median = 2.45, "
        "percentile(99%) = 2.59",
        "[INFO] throughput 1000*batchsize.mean(8)/NPU_compute_time.mean(2.456): 3257.3",
    ]
    figures = parse_figures(lines, profile.toolchain.benchmark.figures)
    assert figures == {
        "samples_per_s": pytest.approx(3257.3),
        "latency_mean_ms": pytest.approx(2.456),
        "latency_p50_ms": pytest.approx(2.45),
        "latency_p99_ms": pytest.approx(2.59),
    }
    vamp = get_profile("vastai-vacc").toolchain.benchmark.figures
    found = parse_figures(
        ["throughput (qps): 41.5769", "    p50 latency: 53599", "    p99 latency: 60001"], vamp
    )
    assert found["latency_p50_ms"] == pytest.approx(53.599)
    assert found["samples_per_s"] == pytest.approx(41.5769)


def test_compile_and_benchmark_with_a_profile_of_real_programs(
    tmp_path: Path, kiln_home: Path
) -> None:
    profile = load_profile_file(DATA / "good-external.yaml")
    model = tmp_path / "model.onnx"
    model.write_bytes(b"not really onnx, the 'compiler' only copies it")
    context = ToolContext(
        precision="fp16",
        batch_size=4,
        seq_len=16,
        input_names=("input_ids", "attention_mask"),
        onnx=model,
    )
    built = compile_with_tool(profile, context)
    assert built.artifact.read_bytes() == model.read_bytes() and not built.cached
    # {precision} spelled by precision_values, each_input expanded, precision_args appended
    assert built.argv[-4:] == [
        "half",
        "--dims=input_ids:4x16",
        "--dims=attention_mask:4x16",
        "--half",
    ]
    again = compile_with_tool(profile, context)
    assert again.cached and again.artifact == built.artifact
    figures = run_external_benchmark(profile, built.artifact, batch_size=4, seq_len=16)
    assert figures["samples_per_s"] == pytest.approx(12.5 * 4)  # qps x batch
    assert figures["latency_p50_ms"] == pytest.approx(1.5)
    assert figures["command"][-2:] == [str(built.artifact), "4"]


def test_vendor_placeholders_render_as_their_tools_expect() -> None:
    profile = get_profile("ascend-310p")
    context = ToolContext(
        precision="fp16",
        batch_size=8,
        seq_len=128,
        input_names=("input_ids", "attention_mask", "token_type_ids"),
        onnx=Path("/m/model.onnx"),
    )
    values = context.values(profile) | {
        "output_stem": "/out/model",
        "op_precision_file": "/out/op_precision.ini",
    }
    argv = render(profile.toolchain.compile.command, values, input_names=context.input_names)
    assert "--input_shape=input_ids:8,128;attention_mask:8,128;token_type_ids:8,128" in argv
    assert "--precision_mode=force_fp16" in argv and "--output=/out/model" in argv
    mm = get_profile("cambricon-mlu370").toolchain.benchmark
    argv = render(
        mm.command,
        values | {"output": "m.mm", "iterations": 10, "warmup": 1},
        input_names=("input_ids", "attention_mask"),
    )
    start = argv.index("--input_dims")
    assert argv[start : start + 3] == ["--input_dims", "8,128", "8,128"]


def _through_compile(config: RunConfig, events: list) -> tuple:
    """The stages up to compile, each handed the outputs before it."""
    from kiln_lab.core.stages import compile, export, load, optimize, quantize, resolve

    ctx = StageContext(config, "external-test", events.append)
    resolved = resolve.run(ctx)
    loaded = load.run(ctx, resolved)
    graphs = optimize.run(ctx, resolved, loaded, export.run(ctx, resolved, loaded))
    quantized = quantize.run(ctx, resolved, loaded, graphs)
    return ctx, resolved, loaded, compile.run(ctx, resolved, loaded, quantized.graphs)


def test_external_profile_end_to_end(tiny_assets: Path, kiln_home: Path) -> None:
    """cpu-external-ort: the optimizer CLI compiles, ORT evaluates, kiln-bench measures."""
    from kiln_lab.core.stages import benchmark, evaluate, verify

    events: list = []
    config = RunConfig(
        model="tiny-ner-bert",
        profile="cpu-external-ort",
        limit=16,
        batch_size=8,
        bench_batch_sizes=(2,),
        bench_seq_lens=(16, 32),
        bench_iterations=3,
        bench_warmup=1,
    )
    ctx, resolved, loaded, compiled = _through_compile(config, events)
    command = compiled.toolchain["compile"]["command"]
    assert command[:3] == [sys.executable, "-m", "onnxruntime.transformers.optimizer"]
    artifacts = [e for e in events if isinstance(e, ArtifactWritten) and e.artifact == "compiled"]
    assert artifacts and Path(artifacts[0].path).exists()
    assert compiled.model.settings()["runtime"] == "onnxruntime"
    parity = verify.run(ctx, resolved, loaded, compiled)
    assert parity is not None and parity.status == "pass", parity
    evaluation = evaluate.run(ctx, resolved, loaded, compiled)
    assert evaluation is not None and 0.0 <= evaluation.accuracy["entity_f1"] <= 1.0
    benchmarked = benchmark.run(ctx, resolved, loaded, compiled)
    assert benchmarked is not None and benchmarked.tool
    cells = benchmarked.cells
    assert [(c["batch_size"], c["seq_len"]) for c in cells] == [(2, 16), (2, 32)]
    for cell in cells:
        assert cell["samples_per_s"] > 0 and cell["latency"]["p99_ms"] >= cell["latency"]["p50_ms"]
        assert "kiln_lab.tui.commands.kiln_bench" in cell["command"]
    # The plan the tool ran is kept with the cells (it used to be overwritten).
    assert benchmarked.to_dict()["plan"]["source"] == "external tool"
    live = [e for e in events if isinstance(e, BenchmarkCellMeasured)]
    assert len(live) == 2 and {e.source for e in live} == {"tool"}
    assert any(isinstance(e, StageFinished) and e.stage_name == "benchmark" for e in events)
    # The compile step's cache: a second run reuses the optimised graph.
    events2: list = []
    *_, compiled2 = _through_compile(config, events2)
    assert compiled2.toolchain["compile"]["cached"] is True


CALIBRATING = """
name: ext-calibrating
title: A compile step that reads a templated config file and calibration samples
runtime: external
precisions: [int8]
toolchain:
  calibration_keys: indexed
  compile:
    command:
      - "{python}"
      - -c
      - |
        import json, shutil, sys
        config = json.load(open("build.json"))
        print("config", json.dumps(config), flush=True)
        shutil.copy(config["model"], sys.argv[1])
      - "{output}"
    files:
      build.json: >-
        {{"model": "{onnx}", "shape": {input_shapes_json},
        "calib": "{calibration_list}"}}
    artifact: model.onnx
"""


def test_compile_writes_templated_files_and_calibration_samples(
    tmp_path: Path, kiln_home: Path
) -> None:
    import numpy as np

    path = tmp_path / "calibrating.yaml"
    path.write_text(CALIBRATING)
    profile = load_profile_file(path)
    model = tmp_path / "in.onnx"
    model.write_bytes(b"graph")
    samples = [
        {"input_ids": np.arange(8) + i, "attention_mask": np.ones(8, dtype=np.int64)}
        for i in range(3)
    ]
    context = ToolContext(
        precision="int8",
        batch_size=1,
        seq_len=8,
        input_names=("input_ids", "attention_mask"),
        onnx=model,
        calibration=lambda: samples,
    )
    built = compile_with_tool(profile, context)
    config = json.loads((built.output_dir / "build.json").read_text())
    assert config["shape"] == {"input_ids": [1, 8], "attention_mask": [1, 8]}
    listed = Path(config["calib"]).read_text().split()
    assert len(listed) == 3
    first = np.load(listed[0])
    assert sorted(first.files) == ["input_0", "input_1"]
    np.testing.assert_array_equal(first["input_0"], np.arange(8))
    assert built.artifact.read_bytes() == b"graph"
