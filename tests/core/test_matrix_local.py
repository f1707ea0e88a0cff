"""A local matrix through the real command: killed mid-way, the same command finishes only
what was missing (finished cells keep their runs; nothing runs twice)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kiln_lab.core.store import RunStore

COMMAND = [
    sys.executable,
    "-m",
    "kiln_lab.tui.cli",
    "matrix",
    "--models",
    "zh-ner-tiny",
    "--profiles",
    "cpu-onnxruntime,cpu-openvino",
    "--precisions",
    "fp32,int8",
    "--limit",
    "16",
    "--json",
]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_killed_matrix_driver_and_the_same_command_again(kiln_home: Path) -> None:
    driver = subprocess.Popen(COMMAND, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    store_path = kiln_home / "runs.sqlite"
    deadline = time.monotonic() + 200
    first_done: dict[int, str] = {}
    while time.monotonic() < deadline and not first_done:
        time.sleep(0.3)
        if not store_path.exists():
            continue
        with RunStore(store_path) as store:
            for matrix in store.matrices():
                for cell in store.matrix_cells(matrix.id):
                    if cell.run_id and store.run(cell.run_id).status == "succeeded":
                        first_done[cell.position] = cell.run_id
    assert first_done, "no cell finished in time"
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    again = subprocess.run(COMMAND, capture_output=True, text=True, timeout=240, check=False)
    assert again.returncode == 0, again.stderr
    assert "resuming mx-" in again.stderr
    data = json.loads(again.stdout)
    assert data["counts"] == {"succeeded": 3, "skipped": 1}
    rows = {row["position"]: row for row in data["cells"]}
    for position, run_id in first_done.items():
        assert rows[position]["run"] == run_id and rows[position]["attempts"] == 1
    with RunStore(store_path) as store:
        assert len(store.runs()) == 3  # one run per runnable cell, none started twice
        assert len(store.matrices()) == 1
