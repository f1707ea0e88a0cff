"""Profiles: the schema, good and bad files, detection, `kiln profiles check`, `kiln doctor`."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from kiln_lab.core.availability import check_availability, nvidia_gpus, ort_providers
from kiln_lab.core.errors import ConfigError
from kiln_lab.core.profiles import EachInput, get_profile, list_profiles, load_profile_file

DATA = Path(__file__).resolve().parent.parent / "data" / "profiles"
SHIPPED = {
    "cpu-torch",
    "cpu-torchscript",
    "cpu-onnxruntime",
    "cpu-openvino",
    "cpu-external-ort",
    "cpu-polygraphy",
    "cuda-polygraphy-trt",
    "cuda-torch",
    "cuda-onnxruntime",
    "cuda-tensorrt",
    "vastai-vacc",
    "ascend-310p",
    "cambricon-mlu370",
    "paddle-inference",
}
VENDOR_TOOLS = {
    "vastai-vacc": ("vamc", "source $VASTPIPE_HOME/bin/activate.sh"),
    "ascend-310p": ("atc", "source /usr/local/Ascend/ascend-toolkit/set_env.sh"),
    "cambricon-mlu370": ("mm_run", "NEUWARE_HOME=/usr/local/neuware"),
    "paddle-inference": ("x2paddle", "pip install paddlepaddle"),
}


def test_every_shipped_profile_loads_frozen_and_typed() -> None:
    profiles = {p.name: p for p in list_profiles()}
    assert set(profiles) == SHIPPED
    ascend = profiles["ascend-310p"]
    assert ascend.static_shapes and ascend.op_precision == {"Gelu": "high_performance"}
    assert ascend.toolchain.precision_values["fp16"] == "force_fp16"
    assert ascend.toolchain.benchmark.figures["latency_p99_ms"].scale == 1.0
    vamp = profiles["vastai-vacc"].toolchain.benchmark
    assert vamp.figures["latency_p50_ms"].scale == pytest.approx(0.001)
    assert profiles["vastai-vacc"].toolchain.model_inputs() == ("torchscript",)
    mm_run = profiles["cambricon-mlu370"].toolchain
    assert any(isinstance(a, EachInput) for a in mm_run.compile.command)
    assert profiles["cpu-openvino"].defaults.instances == 1
    with pytest.raises(Exception, match="frozen"):
        ascend.defaults.batch_size = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "line", "in_message", "in_hint"),
    [
        ("typo-key.yaml", 6, "defaults.batch_sise", "batch_size"),
        ("typo-toolchain-key.yaml", 7, "toolchain.compile.comand", "did you mean 'command'"),
        ("wrong-type.yaml", 6, "defaults.batch_size", None),
        ("unknown-placeholder.yaml", 10, "did you mean {onnx}", None),
        ("missing-placeholder.yaml", 6, "never says where to write", None),
        ("bad-figure.yaml", 12, "exactly one (group)", None),
        ("unknown-runtime.yaml", 3, "'openvino'", None),
        ("missing-toolchain.yaml", None, "needs a toolchain", None),
    ],
)
def test_bad_profile_names_file_line_key_and_fix(
    name: str, line: int | None, in_message: str, in_hint: str | None
) -> None:
    with pytest.raises(ConfigError) as info:
        load_profile_file(DATA / name)
    err = info.value
    assert err.path.endswith(name)
    assert err.line == line
    assert in_message in err.message
    if in_hint:
        assert in_hint in err.hint


def test_placeholder_checks_cover_files_env_and_each_input(tmp_path: Path) -> None:
    base = (DATA / "good-external.yaml").read_text()
    bad_file = base.replace('      - "{output}"\n      - "{batch}"', "")
    assert bad_file != base
    path = tmp_path / "no-artifact.yaml"
    path.write_text(bad_file)
    with pytest.raises(ConfigError, match="benchmark command never names the compiled model"):
        load_profile_file(path)
    path.write_text(base.replace("{input_name}:{batch}", "{input_nam}:{batch}"))
    with pytest.raises(ConfigError, match="did you mean {input_name}"):
        load_profile_file(path)
    path.write_text(base.replace('- "{onnx}"', '- "{env}"'))
    with pytest.raises(ConfigError, match=r"\{env.NAME\}"):
        load_profile_file(path)


def test_vendor_detection_with_a_path_that_lacks_the_tools(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    for var in ("VASTPIPE_HOME", "ASCEND_TOOLKIT_HOME", "NEUWARE_HOME", "MM_BUILD"):
        monkeypatch.delenv(var, raising=False)
    for name, (tool, fix) in VENDOR_TOOLS.items():
        status = check_availability(get_profile(name))
        assert not status.available, name
        assert f"executable '{tool}' is not on PATH" in status.reason, status.reason
        assert fix in status.fix, status.fix
        assert all(m.what and m.fix for m in status.missing)


def test_detection_reports_every_missing_piece_then_finds_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    profile = load_profile_file(DATA / "vendor-path.yaml")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("KILN_TEST_VENDOR_HOME", raising=False)
    status = check_availability(profile)
    assert not status.available
    assert [m.what for m in status.missing] == [
        "executable 'kiln-test-vendor-compiler' is not on PATH",
        "executable 'kiln-test-vendor-bench' is not on PATH",
        "environment variable KILN_TEST_VENDOR_HOME is not set",
    ]
    assert status.fix == "source /opt/kiln-test-vendor/set_env.sh"
    for tool in ("kiln-test-vendor-compiler", "kiln-test-vendor-bench"):
        exe = bin_dir / tool
        exe.write_text("#!/bin/sh\nexit 0\n")
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("KILN_TEST_VENDOR_HOME", str(tmp_path))
    assert check_availability(profile).available


def test_device_query_commands_run_without_a_shell(tmp_path: Path) -> None:
    text = (
        (DATA / "vendor-path.yaml")
        .read_text()
        .replace(
            "  setup_hint:",
            "  commands:\n"
            "    - run: [python3, -c, 'import sys; sys.exit(3)']\n"
            "      missing: the device did not answer\n"
            "      fix: plug it in\n"
            "  setup_hint:",
        )
    )
    text = text.replace("executables: [kiln-test-vendor-compiler, kiln-test-vendor-bench]", "")
    text = text.replace("env_vars: [KILN_TEST_VENDOR_HOME]", "")
    path = tmp_path / "probe.yaml"
    path.write_text(text)
    status = check_availability(load_profile_file(path))
    assert not status.available
    assert "the device did not answer" in status.reason and "exited 3" in status.reason


@pytest.mark.skipif(bool(nvidia_gpus()[0]), reason="this machine has an NVIDIA GPU")
def test_cuda_profiles_say_exactly_what_is_missing() -> None:
    for name in ("cuda-torch", "cuda-onnxruntime", "cuda-tensorrt"):
        status = check_availability(get_profile(name))
        assert not status.available
        assert "no NVIDIA GPU" in status.reason
        assert "NVIDIA GPU and its driver" in status.fix
    if "CUDAExecutionProvider" not in ort_providers():
        status = check_availability(get_profile("cuda-onnxruntime"))
        assert "ONNX Runtime has no CUDAExecutionProvider" in status.reason
        assert "pip install onnxruntime-gpu" in status.fix
    import torch

    if torch.version.cuda is None:
        status = check_availability(get_profile("cuda-torch"))
        assert "CPU-only build" in status.reason and "download.pytorch.org" in status.fix


def test_profiles_check_command(capsys: pytest.CaptureFixture[str]) -> None:
    from kiln_lab.tui.cli import main

    assert main(["profiles", "check", str(DATA / "good-external.yaml")]) == 0
    assert "OK ext-good" in capsys.readouterr().out
    assert main(["profiles", "check", str(DATA / "unknown-placeholder.yaml")]) == 1
    printed = capsys.readouterr().err
    assert "unknown-placeholder.yaml:10" in printed and "{onxx}" in printed
    assert main(["profiles", "check", str(DATA / "typo-key.yaml"), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["error"]["line"] == 6


def test_doctor_json_lists_every_profile_with_a_reason(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kiln_lab.tui.cli import main

    monkeypatch.setenv("PATH", os.environ["PATH"])
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {row["name"]: row for row in report["profiles"]}
    assert set(rows) == SHIPPED and not report["profile_errors"]
    for name in ("cpu-torch", "cpu-torchscript", "cpu-onnxruntime", "cpu-openvino"):
        assert rows[name]["available"], rows[name]
    assert rows["cpu-external-ort"]["available"]
    for name, row in rows.items():
        assert row["available"] or (row["reason"] and row["fix"] and row["missing"]), name
    assert set(report["cpu"]["flags"]) >= {"avx2", "avx512_vnni", "amx_int8"}
    assert report["packages"]["onnxruntime"]["providers"]
    assert "nvml" in report["gpus"]
    assert main(["doctor"]) == 0
    shown = capsys.readouterr().out
    assert "cpu-openvino" in shown and "int8 path" in shown
