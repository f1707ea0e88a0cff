"""The headless command line, as a script would call it: real worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent.parent / "data"


def kiln(*args: str, home: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "KILN_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "160"}
    return subprocess.run(
        [sys.executable, "-m", "kiln_lab.tui.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_run_json_prints_exactly_one_object(tiny_assets: Path, kiln_home: Path) -> None:
    proc = kiln("run", "--model", "tiny-ner-bert", "--limit", "24", "--json", home=kiln_home)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    for key in (
        "run_id",
        "model",
        "dataset",
        "runtime",
        "precision",
        "metrics",
        "throughput_samples_per_s",
        "latency_p50_ms",
        "latency_p99_ms",
        "stages",
        "parity",
    ):
        assert key in data, key
    assert data["status"] == "succeeded"
    assert {"entity_f1", "token_accuracy"} <= set(data["metrics"])
    # The worker's own peak memory (the process that ran the pipeline), in MB.
    assert isinstance(data["worker"]["pid"], int) and data["worker"]["peak_rss_mb"] > 50
    listing = json.loads(kiln("runs", "--json", home=kiln_home).stdout)
    assert listing[0]["id"] == data["run_id"]
    shown = json.loads(kiln("show", data["run_id"], "--json", home=kiln_home).stdout)
    assert shown["result"]["metrics"] == data["metrics"]


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture
def store_with_a_run(tiny_assets: Path, kiln_home: Path) -> tuple[Path, str]:
    proc = kiln("run", "--model", "tiny-senti-roberta", "--limit", "8", "--json", home=kiln_home)
    assert proc.returncode == 0, proc.stderr
    return kiln_home, json.loads(proc.stdout)["run_id"]


def _store_unchanged(home: Path, run_id: str) -> None:
    runs = json.loads(kiln("runs", "--json", home=home).stdout)
    assert [r["id"] for r in runs] == [run_id]
    assert runs[0]["status"] == "succeeded"


def test_malformed_data_file(store_with_a_run: tuple[Path, str]) -> None:
    home, run_id = store_with_a_run
    line = _one_line_error(
        kiln(
            "run",
            "--model",
            "tiny-ner-bert",
            "--dataset-file",
            str(DATA / "datasets" / "bad" / "malformed.bio"),
            "--format",
            "bio",
            home=home,
        )
    )
    assert "malformed.bio:" in line and "fix:" in line
    _store_unchanged(home, run_id)


def test_label_set_mismatch(store_with_a_run: tuple[Path, str], tmp_path: Path) -> None:
    home, run_id = store_with_a_run
    odd = tmp_path / "odd-labels.bio"
    odd.write_text("李 B-PERSON\n白 I-PERSON\n\n", encoding="utf-8")
    line = _one_line_error(
        kiln(
            "run",
            "--model",
            "tiny-ner-bert",
            "--dataset-file",
            str(odd),
            "--format",
            "bio",
            home=home,
        )
    )
    assert "B-PERSON" in line and "fix:" in line
    _store_unchanged(home, run_id)


def test_missing_model_directory(store_with_a_run: tuple[Path, str], tmp_path: Path) -> None:
    home, run_id = store_with_a_run
    line = _one_line_error(
        kiln(
            "run", "--model", "tiny-ner-bert", "--weights", str(tmp_path / "no-such-dir"), home=home
        )
    )
    assert "no-such-dir" in line and "does not exist" in line
    assert "Model weights not found" in line and "fix:" in line
    _store_unchanged(home, run_id)


def test_debug_shows_the_traceback(tiny_assets: Path, kiln_home: Path) -> None:
    proc = kiln("--debug", "run", "--model", "no-such-model", home=kiln_home)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_catalogue_commands(tiny_assets: Path, kiln_home: Path) -> None:
    models = json.loads(kiln("models", "--json", home=kiln_home).stdout)
    assert {"tiny-ner-bert", "bert-base-chinese-ner"} <= {m["name"] for m in models}
    profiles = json.loads(kiln("profiles", "--json", home=kiln_home).stdout)
    assert all(p["available"] for p in profiles if p["name"].startswith("cpu-"))
    datasets = json.loads(kiln("datasets", "--json", home=kiln_home).stdout)
    pd = next(d for d in datasets if d["name"] == "peoples-daily-1998")
    assert set(pd["splits"]) == {"train", "dev", "test"}


def test_help_is_true() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kiln_lab.tui.cli", "run", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for flag in ("--model", "--profile", "--precision", "--dataset-file", "--format", "--json"):
        assert flag in out
