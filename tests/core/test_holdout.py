"""The int8 guard and calibration never touch the examples a run reports on (issue 15).

A user's file has no train or dev split: Kiln holds a fixed part apart for them and
reports on the rest; dynamic int8 without the guard reads no examples, so nothing is
held apart for it.
"""

from __future__ import annotations

from pathlib import Path

from kiln_lab.core.data.holdout import HOLDOUT_FRACTION, hold_apart
from kiln_lab.core.data.types import TextExample, make_split
from kiln_lab.core.runconfig import RunConfig
from kiln_lab.core.stages.resolve import preflight


def _split(n: int, copies: int = 1) -> object:
    examples = [TextExample(f"评论 {i}", "pos" if i % 2 else "neg") for i in range(n)]
    return make_split("file", [e for e in examples for _ in range(copies)])


def test_the_held_part_is_fixed_disjoint_capped_and_keeps_copies_together() -> None:
    split = _split(200, copies=2)  # every example twice
    first, again = hold_apart(split, 1000), hold_apart(split, 1000)
    assert first == again  # by content, not by chance
    held, reported = set(first.held.examples), set(first.reported.examples)
    assert held and not held & reported  # no copy of a held example is reported on
    assert len(first.held) <= HOLDOUT_FRACTION * len(split)
    assert len(first.held) + len(first.reported) == len(split)
    positions = [split.examples.index(e) for e in first.reported.examples]
    assert positions == sorted(positions)  # the reported part keeps file order
    assert len(hold_apart(split, 10).held) == 10  # the guard's sample count caps it too
    assert len(hold_apart(_split(3), 100).held) == 0  # too small to hold any apart


def test_a_shuffled_file_holds_apart_the_same_examples() -> None:
    split = _split(100)
    shuffled = make_split("file", reversed(split.examples))
    assert set(hold_apart(split, 50).held.examples) == set(hold_apart(shuffled, 50).held.examples)


def _file(tmp_path: Path, n: int = 100) -> Path:
    path = tmp_path / "reviews.tsv"
    rows = [f"{i % 2}\t第{i}条评论，{'很好' if i % 2 else '很差'}" for i in range(n)]
    path.write_text("label\ttext_a\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def _resolve(tmp_path: Path, **options: object) -> object:
    config = RunConfig(
        model="zh-senti-tiny",
        profile="cpu-onnxruntime",
        dataset_file=str(_file(tmp_path)),
        dataset_format="tsv",
        **options,
    )
    return preflight(config)


def test_guarded_int8_on_a_users_file_reports_on_the_rest(tmp_path: Path) -> None:
    found = _resolve(tmp_path, precision="int8")
    assert found.held is not None and len(found.held.held) == 20
    assert len(found.split) == 80
    assert found.apart("dev") is found.held.held and found.apart("train") is found.held.held
    assert not set(found.apart("dev").examples) & set(found.split.examples)


def test_nothing_is_held_apart_when_nothing_reads_examples_before_evaluating(
    tmp_path: Path,
) -> None:
    for options in ({"precision": "fp32"}, {"precision": "int8", "guard": False}):
        found = _resolve(tmp_path, **options)
        assert found.held is None and len(found.split) == 100, options


def test_static_int8_without_the_guard_still_calibrates_apart(tmp_path: Path) -> None:
    found = _resolve(tmp_path, precision="int8", guard=False, quantization="static")
    assert found.held is not None and len(found.split) == 80


def test_a_guarded_int8_run_on_a_file_reports_only_on_what_the_guard_never_saw(
    tiny_assets: Path, kiln_home: Path
) -> None:
    from kiln_lab.core.pipeline import run_pipeline

    source = Path(__file__).parents[1] / "data" / "datasets" / "peoples_daily_sample.bio"
    result = run_pipeline(
        RunConfig(
            model="tiny-ner-bert",
            precision="int8",
            dataset_file=str(source),
            dataset_format="bio",
            guard_samples=48,
        ),
        "held",
        lambda e: None,
    )
    held = result["held_apart"]
    assert held["held_apart"] >= 1 and result["examples"] == held["reported_on"]
    assert ":held[" in result["quantization"]["calibration"]["source"]
