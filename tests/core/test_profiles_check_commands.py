"""``kiln profiles check FILE`` shows the programs a profile's detect.commands would run.

A profile is trusted like code: ``detect.commands`` run on every availability check
(``kiln run --profile FILE``). The check lists them so an operator can read them first,
and does not run them itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kiln_lab.tui.cli import main

PROFILES = Path(__file__).resolve().parents[2] / "profiles"


def _profile_with_commands(tmp_path: Path, marker: Path) -> Path:
    data = yaml.safe_load((PROFILES / "cpu-onnxruntime.yaml").read_text(encoding="utf-8"))
    data["name"] = "probe-test"
    data.setdefault("detect", {})["commands"] = [
        {"run": ["touch", str(marker)], "missing": "a marker file"},
        {"run": ["echo", "two words"], "missing": "echo"},
    ]
    path = tmp_path / "probe-test.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_check_lists_detect_commands_without_running_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "ran"
    path = _profile_with_commands(tmp_path, marker)
    assert main(["profiles", "check", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "OK probe-test" in shown and "detect.commands: 2 program(s)" in shown
    assert f"$ touch {marker}" in shown and "$ echo 'two words'" in shown
    assert main(["profiles", "check", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["detect_commands"] == [["touch", str(marker)], ["echo", "two words"]]
    assert not marker.exists()


def test_check_of_a_profile_without_commands_says_only_ok(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["profiles", "check", str(PROFILES / "cpu-onnxruntime.yaml")]) == 0
    assert "detect.commands" not in capsys.readouterr().out
