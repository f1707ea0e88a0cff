"""Accuracy through a vendor's own inference tool: the real ``polygraphy`` program.

The ``cpu-polygraphy`` profile compiles with ``polygraphy surgeon sanitize`` and
evaluates through ``polygraphy run --onnxrt`` over files Kiln writes and reads back;
its figures must equal ONNX Runtime's in process, an interrupted evaluation must
resume by sending only what has no predictions yet, and a damaged output file must
stop the run with an error that names it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from kiln_lab.core.errors import Cancelled, ToolOutputError
from kiln_lab.core.paths import profiles_dir
from kiln_lab.core.pipeline import Checkpoints, run_pipeline
from kiln_lab.core.runconfig import RunConfig

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("polygraphy") is None, reason="polygraphy is not installed"
)


def _run(model: str, profile: str, **options: object) -> dict:
    config = RunConfig(model=model, profile=profile, limit=40, batch_size=8, **options)  # type: ignore[arg-type]
    return run_pipeline(config, f"{model}-{Path(profile).stem}", lambda event: None)


@pytest.mark.parametrize(
    ("model", "metrics"),
    [
        ("tiny-ner-bert", ("entity_f1", "token_accuracy")),
        ("tiny-senti-roberta", ("accuracy",)),
    ],
)
def test_evaluated_through_polygraphy_equals_onnxruntime(
    model: str, metrics: tuple[str, ...], tiny_assets: Path, kiln_home: Path
) -> None:
    tool = _run(model, "cpu-polygraphy")
    local = _run(model, "cpu-onnxruntime")
    for name in metrics:
        assert tool["metrics"][name] == pytest.approx(local["metrics"][name], abs=1e-4)
    assert tool["parity"]["status"] == "pass" and tool["parity"]["samples"] > 0
    assert tool["throughput"]["samples_per_s"] > 0
    assert tool["runtime_settings"]["evaluate_with"] == "infer"


def _profile_copy(tmp_path: Path, **infer: object) -> Path:
    """cpu-polygraphy with its infer step changed (a small batches_per_call, a command)."""
    data = yaml.safe_load((profiles_dir() / "cpu-polygraphy.yaml").read_text())
    data["name"] = "polygraphy-test"
    data["toolchain"]["infer"] |= infer
    path = tmp_path / "polygraphy-test.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_resumed_evaluation_sends_only_what_has_no_predictions(
    tiny_assets: Path, kiln_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kiln_lab.core.toolchain as toolchain

    profile = str(_profile_copy(tmp_path, batches_per_call=2))
    config = RunConfig(model="tiny-ner-bert", profile=profile, limit=40, batch_size=8)
    finished: list[str] = []
    real = toolchain.run_infer_tool

    def counting(*args: object, **kwargs: object) -> object:
        done = real(*args, **kwargs)  # type: ignore[arg-type]
        finished.append(str(kwargs["infer_input"]))
        return done

    monkeypatch.setattr(toolchain, "run_infer_tool", counting)
    checkpoints = Checkpoints()
    # 40 examples in batches of 8 are 5 batches, sent 2 per tool run. Stop once verify's
    # run and evaluate's first run have finished.
    with pytest.raises(Cancelled):
        run_pipeline(config, "resumed", lambda e: None, lambda: len(finished) >= 2, checkpoints)
    assert len(checkpoints.load("evaluate/")) == 2
    finished.clear()
    resumed = run_pipeline(config, "resumed", lambda e: None, checkpoints=checkpoints)
    assert len(finished) == 1 + 2  # verify's run, then the three batches left: 2 + 1
    assert len(checkpoints.load("evaluate/")) == 5
    whole = run_pipeline(config, "whole", lambda e: None)
    for name in ("entity_f1", "token_accuracy"):
        assert resumed["metrics"][name] == pytest.approx(whole["metrics"][name], abs=1e-12)


def test_a_damaged_output_file_stops_the_run_naming_it(
    tiny_assets: Path, kiln_home: Path, tmp_path: Path
) -> None:
    """A tool that writes garbage where its outputs belong: never a silent zero. (``{{``
    is a literal brace in a profile's command line.)"""
    damage = (
        "import pathlib, sys; out = pathlib.Path(sys.argv[sys.argv.index('--save-outputs') + 1]);"
        " out.mkdir(parents=True, exist_ok=True); (out / '0000000000.json').write_text('{{\"trunc')"
    )
    profile = _profile_copy(
        tmp_path,
        command=[
            "{python}",
            "-c",
            damage,
            "{output}",
            "--load-inputs",
            "{infer_input}",
            "--save-outputs",
            "{infer_output}",
        ],
    )
    with pytest.raises(ToolOutputError) as info:
        _run("tiny-ner-bert", str(profile))
    assert ".json" in info.value.message


def test_sigkill_during_infer_then_resume_equals_uninterrupted(
    tiny_assets: Path, kiln_home: Path, tmp_path: Path
) -> None:
    """The worker and the tool it runs are killed mid-evaluation; `resume` finishes."""
    import os
    import signal
    import time

    from kiln_lab.core.launcher import launch, resume
    from kiln_lab.core.store import RunStore, pid_alive

    profile = str(_profile_copy(tmp_path, batches_per_call=1))
    config = RunConfig(model="tiny-ner-bert", profile=profile, limit=48, batch_size=8)
    store = RunStore()
    run_id = launch(config, store)
    deadline = time.monotonic() + 180
    while len(store.load_checkpoints(run_id, "evaluate/")) < 1:
        assert time.monotonic() < deadline, "evaluation never checkpointed a batch"
        time.sleep(0.05)
    pid = store.run(run_id).pid
    os.killpg(pid, signal.SIGKILL)  # the worker's session: polygraphy goes down with it
    while pid_alive(pid):
        time.sleep(0.05)
    kept = len(store.load_checkpoints(run_id, "evaluate/"))
    assert 1 <= kept < 6, "the kill should land mid-evaluation"
    assert store.mark_interrupted_if_dead(run_id)
    seen = len(store.events(run_id))
    resume(store, run_id)
    for _ in store.tail(run_id, after=seen):
        pass
    record = store.run(run_id)
    assert record.status == "succeeded", record.error
    whole = run_pipeline(config, "whole", lambda e: None)
    assert record.result["metrics"] == whole["metrics"]


def test_the_run_names_the_tool_not_its_interpreter() -> None:
    from kiln_lab.core.runtimes.infer_tool import _tool_name

    assert _tool_name(["{python}", "-c", "...", "run"], "polygraphy run") == "polygraphy run"
    assert _tool_name(["{python}", "-m", "kiln_lab.tui.commands.magicmind_infer"], "x") == (
        "magicmind_infer"
    )
    assert _tool_name(["python3", "-m", "ais_bench", "--model"], "x") == "ais_bench"
    assert _tool_name(["vamp", "-m", "{output_stem}"], "vamp / vsx") == "vamp"
