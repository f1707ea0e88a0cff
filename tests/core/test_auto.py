"""``--profile auto`` / ``--precision auto``: the fastest build within the budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln_lab.core.errors import KilnError
from kiln_lab.core.runconfig import RunConfig
from kiln_lab.core.stages import auto


def _flags(monkeypatch: pytest.MonkeyPatch, *flags: str) -> None:
    real = auto.cpu_info()
    monkeypatch.setattr(auto, "cpu_info", lambda: real | {"flags": list(flags)})


def test_candidates_follow_the_cpu_and_the_named_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    _flags(monkeypatch, "avx2")
    chosen, skipped = auto.candidates(RunConfig(model="m", profile="auto", precision="auto"))
    assert ("cpu-onnxruntime", "fp32") in chosen and ("cpu-openvino", "fp32") in chosen
    assert not [c for c in chosen if c[1] in ("bf16", "int8")]
    assert {s["precision"] for s in skipped} == {"bf16", "int8"}
    assert all("emulated" in s["why"] for s in skipped)
    _flags(monkeypatch, "avx512_vnni", "amx_bf16", "amx_int8")
    chosen, _ = auto.candidates(RunConfig(model="m", profile="cpu-openvino", precision="auto"))
    assert chosen == [("cpu-openvino", "fp32"), ("cpu-openvino", "bf16"), ("cpu-openvino", "int8")]
    chosen, _ = auto.candidates(RunConfig(model="m", profile="auto", precision="int8"))
    assert chosen == [("cpu-onnxruntime", "int8"), ("cpu-openvino", "int8")]


def _tried(profile: str, precision: str, speed: float, within: bool) -> auto.Tried:
    return auto.Tried(profile, precision, speed, 0.9, 0.1, "pass", within, 0.1)


def test_the_fastest_within_the_budget_wins_and_is_cached(
    kiln_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _flags(monkeypatch, "avx512_vnni")
    figures = {"fp32": (100.0, True), "int8": (400.0, False)}  # int8 fast but too lossy
    calls: list[str] = []

    def fake_try(
        cfg: RunConfig, run_id: str, profile: str, precision: str, *rest: object
    ) -> auto.Tried:
        calls.append(precision)
        return _tried(profile, precision, *figures[precision])

    monkeypatch.setattr(auto, "_try", fake_try)
    cfg = RunConfig(model="tiny-ner-bert", precision="auto")
    decision = auto.choose(cfg, "r", lambda: False)
    assert (decision["profile"], decision["precision"]) == ("cpu-onnxruntime", "fp32")
    assert not decision["cached"] and len(decision["tried"]) == 2
    again = auto.choose(cfg, "r", lambda: False)
    assert again["cached"] and calls == ["fp32", "int8"]  # no second probe
    figures["fp32"] = (100.0, False)
    other = RunConfig(model="tiny-ner-bert", precision="auto", accuracy_budget=0.5)
    with pytest.raises(KilnError, match="no build passed parity within the accuracy budget"):
        auto.choose(other, "r", lambda: False)


def test_an_auto_run_builds_what_it_chose(
    tiny_assets: Path, kiln_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kiln_lab.core.pipeline import run_pipeline

    _flags(monkeypatch, "avx512_vnni")
    monkeypatch.setattr(auto, "PROBE_SECONDS", 0.2)
    result = run_pipeline(
        RunConfig(model="tiny-ner-bert", precision="auto", limit=16, guard_samples=32),
        "auto",
        lambda e: None,
    )
    chosen = result["auto"]
    assert {t["precision"] for t in chosen["tried"]} == {"fp32", "int8"}
    assert all(t["samples_per_s"] > 0 and t["parity"] for t in chosen["tried"])
    assert result["precision"] == chosen["precision"] and result["precision"] != "auto"
    assert result["profile"] == "cpu-onnxruntime" and result["metrics"]
