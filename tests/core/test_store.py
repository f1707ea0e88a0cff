"""What a stored run record tells about itself."""

from __future__ import annotations

from pathlib import Path

from kiln_lab.core.events import RunFinished
from kiln_lab.core.store import RunStore


def test_an_auto_runs_record_names_the_build_its_result_chose(tmp_path: Path) -> None:
    """The record keeps what was asked (auto); history and compare show what ran."""
    store = RunStore(tmp_path / "runs.sqlite")
    run_id = store.create_run({"model": "m", "profile": "auto", "precision": "auto"})
    assert store.run(run_id).build == ("auto", "auto")  # not chosen yet
    result = {"profile": "cpu-openvino", "precision": "bf16"}
    store.finish_run(run_id, RunFinished("succeeded", result))
    record = store.run(run_id)
    assert record.build == ("cpu-openvino", "bf16") and record.profile == "auto"
