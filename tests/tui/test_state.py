"""The app's state, formatting and tailing, without a screen."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import fake_runs
import pytest
from rich.text import Text

from kiln_lab.core.events import LogLine, MetricSampled, RunFinished, StageFailed, StageStarted
from kiln_lab.core.result import RunResult
from kiln_lab.core.store import RunStore
from kiln_lab.tui import format as fmt
from kiln_lab.tui.accuracy import accuracy_table, fp32_reference, published_figure
from kiln_lab.tui.catalogue import (
    Catalogue,
    ModelEntry,
    ProfileEntry,
    Selection,
    auto_entry,
    default_selection,
)
from kiln_lab.tui.compare import compare_rows
from kiln_lab.tui.state import RunView
from kiln_lab.tui.tail import split_batch, tail_run


def record(
    run_id: str,
    *,
    status="succeeded",
    precision="fp32",
    model="m",
    examples=200,
    dataset="peoples-daily-1998",
    f1=0.8,
    perf_only=False,
):
    result = {
        "dataset": dataset,
        "split": "test",
        "examples": examples,
        "metrics": {"entity_f1": f1},
        "perf_only": perf_only,
    }
    return SimpleNamespace(
        id=run_id, status=status, precision=precision, model=model, result=result, config={}
    )


class TestFp32Reference:
    def test_most_recent_matching_run_wins(self) -> None:
        runs = [record("new", f1=0.7), record("old", f1=0.9)]
        found = fp32_reference(runs, model="m", dataset=("peoples-daily-1998", "test"))
        assert found.id == "new"

    @pytest.mark.parametrize(
        "other",
        [
            {"status": "failed"},
            {"precision": "int8"},
            {"model": "other"},
            {"dataset": "shopping-reviews"},
            {"examples": 40},
            {"perf_only": True},
        ],
    )
    def test_only_comparable_runs_count(self, other: dict) -> None:
        runs = [record("x", **other)]
        assert (
            fp32_reference(runs, model="m", dataset=("peoples-daily-1998", "test"), examples=200)
            is None
        )

    def test_a_run_is_not_its_own_reference(self) -> None:
        runs = [record("self"), record("prev")]
        found = fp32_reference(runs, model="m", dataset=None, exclude="self")
        assert found.id == "prev"


def test_published_figure_prefers_fp32() -> None:
    refs = [
        {"metric": "entity_f1", "value": 0.902, "precision": "int8", "runtime": "vacc"},
        {"metric": "entity_f1", "value": 0.959, "precision": "fp32", "runtime": "PyTorch"},
    ]
    assert published_figure(refs, "entity_f1") == (0.959, "fp32 PyTorch", False)
    assert published_figure(refs, "accuracy") is None
    # Issue 15: a figure measured on the run's own data is the one to take a delta from.
    refs.append({"metric": "entity_f1", "value": 0.87, "precision": "fp32", "dataset": "pd:test"})
    assert published_figure(refs, "entity_f1", "pd:test") == (0.87, "fp32", True)


def test_run_view_follows_a_whole_run() -> None:
    view = RunView("r1")
    view.apply_all(fake_runs.run_events(fake_runs.NER_CONFIG, f1=0.8, speed=100.0, t0=fake_runs.T0))
    assert view.status == "succeeded"
    statuses = {name: stage.status for name, stage in view.stages.items()}
    assert statuses["quantize"] == "skipped" and statuses["evaluate"] == "done"
    assert view.accuracy["entity_f1"] == pytest.approx(0.8)
    assert view.batch_size == 8 and view.examples == 200
    assert view.dataset_key() == ("peoples-daily-1998", "test")
    lines = view.drain_log()
    assert any(line.level == "warning" for line in lines)
    assert view.drain_log() == []


def test_run_view_log_is_capped_and_splits_lines() -> None:
    view = RunView("r1", log_cap=100)
    for i in range(500):
        view.apply(LogLine("evaluate", "info", f"line {i}\nsecond"))
    assert view.log_total == 1000
    kept = view.drain_log()
    assert len(kept) == 100 and kept[-1].text == "second"


def test_running_stage_becomes_failed_or_cancelled_at_the_end() -> None:
    view = RunView("r1")
    view.apply(StageStarted("evaluate", "scoring", ts=10.0))
    assert view.stages["evaluate"].elapsed(12.5) == pytest.approx(2.5)
    view.apply(StageFailed("evaluate", 1.0, {"kind": "Cancelled", "title": "Run cancelled"}))
    assert view.stages["evaluate"].status == "cancelled"
    view.apply(RunFinished("cancelled", error={"title": "Run cancelled"}))
    assert view.is_finished and view.status == "cancelled"


def test_accuracy_table_deltas_against_the_fp32_run_then_the_card() -> None:
    view = RunView("r2")
    view.apply(MetricSampled("evaluate", "accuracy", fake_runs.ner_accuracy(0.75, 100)))
    card = [{"metric": "entity_f1", "value": 0.9, "precision": "fp32"}]
    table = accuracy_table(view, reference=record("ref", f1=0.8), card_references=card)
    top = table.rows[0]
    assert (top.metric, top.live, top.reference, top.card) == ("entity_f1", 0.75, 0.8, 0.9)
    assert top.delta == pytest.approx(-0.05) and table.delta_basis == "fp32 run"
    assert [p[0] for p in table.per_label] == ["LOC", "ORG", "PER"]
    # The card's figure is from another split: shown, but no delta against it.
    no_ref = accuracy_table(view, card_references=card)
    assert no_ref.rows[0].card == 0.9 and no_ref.rows[0].delta is None
    view.config = {"dataset": "pd", "split": "test"}
    same_data = [card[0] | {"dataset": "pd:test"}]
    no_ref = accuracy_table(view, card_references=same_data)
    assert no_ref.rows[0].delta == pytest.approx(-0.15) and no_ref.delta_basis == "card"
    assert no_ref.state == "live"


@pytest.mark.parametrize(
    ("status", "config", "extra", "state"),
    [
        ("succeeded", {}, {"complete": True}, "final"),
        ("succeeded", {"limit": 50}, {"complete": True}, "limited"),
        ("cancelled", {}, {"complete": False}, "partial"),
        ("succeeded", {}, {"complete": False, "early_stop": {"after": 60}}, "stopped"),
    ],
)
def test_only_a_complete_evaluation_is_final(status, config, extra, state) -> None:
    view = RunView("r5")
    view.config = {"dataset": "pd", "split": "test"} | config
    figures = fake_runs.ner_accuracy(0.75, 100, final=True) | extra
    view.apply(MetricSampled("evaluate", "accuracy", figures))
    view.apply(RunFinished(status))
    card = [{"metric": "entity_f1", "value": 0.9, "precision": "fp32", "dataset": "pd:test"}]
    table = accuracy_table(view, card_references=card)
    assert table.state == state
    # A delta against the card only for the whole split, evaluated in full.
    assert (table.rows[0].delta is not None) == (state == "final")


def test_the_pane_shows_the_language_table_beside_the_card() -> None:
    from kiln_lab.tui.widgets.accuracy_pane import render_accuracy

    view = RunView("r7")
    row = {"accuracy": 0.81, "count": 120, "interval": {"low": 0.74, "high": 0.88}}
    figures = {"accuracy": 0.8, "count": 240, "per_class": {}, "per_language": {"de": row}}
    view.apply(MetricSampled("evaluate", "accuracy", figures))
    card = [{"metric": "accuracy", "value": 0.76, "per_language": {"de": 0.781}}]
    table = accuracy_table(view, card_references=card)
    assert table.per_language == (("de", 0.81, pytest.approx(0.07), 120, 0.781),)
    text = render_accuracy(table, 20).plain
    assert "language" in text and "de" in text and "0.781" in text and "0.070" in text


def test_the_pane_shows_the_interval_and_per_type_spreads() -> None:
    from kiln_lab.tui.widgets.accuracy_pane import render_accuracy

    view = RunView("r6")
    figures = fake_runs.ner_accuracy(0.75, 100) | {
        "confidence": 0.95,
        "sequence": {"entity_f1": {"low": 0.70, "high": 0.80, "method": "confidence-sequence"}},
    }
    view.apply(MetricSampled("evaluate", "accuracy", figures))
    text = render_accuracy(accuracy_table(view), 20).plain
    assert "95% [0.7000, 0.8000] ±0.0500 anytime-valid" in text
    figures["intervals"] = {
        "entity_f1": {"low": 0.72, "high": 0.78, "method": "bootstrap"},
        "per_type": {"PER": {"f1": {"low": 0.5, "high": 0.7}}},
    }
    view.apply(MetricSampled("evaluate", "accuracy", figures | {"final": True, "complete": True}))
    view.apply(RunFinished("succeeded"))
    text = render_accuracy(accuracy_table(view), 20).plain
    assert "final" in text and "[0.7200, 0.7800]" in text and "bootstrap" in text
    assert "±F1" in text and "0.100" in text


def test_accuracy_table_for_classification_and_perf_only() -> None:
    view = RunView("r3")
    view.apply(
        MetricSampled(
            "evaluate",
            "accuracy",
            {"accuracy": 0.9, "macro_f1": 0.88, "count": 10, "per_class": {}},
        )
    )
    table = accuracy_table(view)
    assert table.task == "classification" and [r.metric for r in table.rows] == [
        "accuracy",
        "macro_f1",
    ]
    perf = RunView("r4")
    perf.config = {"perf_only": True}
    assert accuracy_table(perf).perf_only


def test_split_batch_collapses_metrics_but_keeps_order() -> None:
    events = fake_runs.run_events(fake_runs.NER_CONFIG, f1=0.8, speed=100.0, t0=fake_runs.T0)
    ordered, figures = split_batch(events)
    assert not any(isinstance(e, MetricSampled) for e in ordered)
    assert figures.latest["accuracy"]["final"] is False
    assert len(figures.throughput_points) == 4
    assert figures.progress["evaluate"] == (200, 200)


def test_tail_run_delivers_a_finished_run_and_stops(kiln_home: Path) -> None:
    path = fake_runs.fake_store(kiln_home / "runs.sqlite")
    got: dict = {"events": [], "figures": [], "records": []}
    with RunStore(path) as store:
        status = tail_run(
            store,
            "20260101-000000-aaaa",
            on_events=got["events"].extend,
            on_figures=got["figures"].append,
            on_record=got["records"].append,
            cancelled=lambda: False,
            batch=7,
            sleep=lambda s: None,
        )
    assert status == "succeeded"
    assert isinstance(got["events"][-1], RunFinished)
    assert got["records"][-1].status == "succeeded"
    assert got["figures"]


def test_tail_run_marks_a_dead_worker_interrupted(kiln_home: Path) -> None:
    with RunStore(kiln_home / "runs.sqlite") as store:
        run_id = store.create_run(fake_runs.NER_CONFIG)
        store.set_status(run_id, "running", pid=2**22 + 12345)
        events: list = []
        status = tail_run(
            store,
            run_id,
            on_events=events.extend,
            on_figures=lambda f: None,
            on_record=lambda r: None,
            cancelled=lambda: False,
            sleep=lambda s: None,
            poll_s=0.0,
        )
    assert status == "interrupted"
    assert events[-1].status == "interrupted"


class TestFormat:
    def test_delta_keeps_its_sign_without_colour(self) -> None:
        assert fmt.delta(0.0123).plain == "+0.0123"
        assert fmt.delta(-0.5).plain == "−0.5000"
        assert fmt.delta(None).plain == "—"

    def test_sparkline_and_bar(self) -> None:
        assert fmt.sparkline([0, 5, 10], 10) == "▁▅█"
        assert len(fmt.sparkline(list(range(100)), 20)) == 20
        assert fmt.bar(1, 2, 8) == "████····"
        assert fmt.bar(1, None, 8) == ""

    def test_durations(self) -> None:
        assert fmt.duration(1.234) == "1.23s"
        assert fmt.duration(75) == "1m15s"
        assert fmt.clock(3725) == "1:02:05"


def test_compare_rows_show_deltas_against_the_first(kiln_home: Path) -> None:
    path = fake_runs.fake_store(kiln_home / "runs.sqlite")
    with RunStore(path) as store:
        records = [store.run("20260101-000000-aaaa"), store.run("20260101-001000-bbbb")]
    rows = dict((label, [c.plain for c in cells]) for label, cells in compare_rows(records))
    assert rows["precision"] == ["fp32", "int8"]
    assert rows["entity F1"] == ["0.7812", "0.7655 −0.0157"]
    assert rows["samples/s"][1].endswith("×1.80")
    assert all(isinstance(c, Text) for _, cells in compare_rows(records) for c in cells)


def test_default_selection_prefers_the_last_run_then_the_demo() -> None:
    catalogue = Catalogue(
        models=(
            ModelEntry("a", "A", "bert", "token-classification", 128, "d", "/w"),
            ModelEntry("zh-ner-tiny", "Z", "bert", "token-classification", 128, "d", "/w"),
        ),
        profiles=(
            ProfileEntry("cpu-onnxruntime", "CPU", "onnxruntime", ("fp32", "int8"), True),
            ProfileEntry("cpu-torch", "CPU", "torch", ("fp32",), True),
        ),
    )
    demo = default_selection(catalogue)
    assert (demo.model, demo.profile, demo.precision) == ("zh-ner-tiny", "cpu-onnxruntime", "fp32")
    last = default_selection(catalogue, {"model": "a", "profile": "cpu-torch", "precision": "int8"})
    assert (last.model, last.profile, last.precision) == ("a", "cpu-torch", "fp32")
    # With the picker's "auto" entry (as load_catalogue adds it) the demo lets Kiln choose.
    catalogue = replace(catalogue, profiles=(auto_entry(catalogue.profiles), *catalogue.profiles))
    demo = default_selection(catalogue)
    assert (demo.model, demo.profile, demo.precision) == ("zh-ner-tiny", "auto", "auto")
    assert demo.to_config(catalogue).is_auto


def test_the_auto_entry_can_run_where_any_profile_it_tries_can() -> None:
    def entry(name: str, available: bool | None) -> ProfileEntry:
        return ProfileEntry(name, name, name, ("fp32",), available)

    outside = entry("ascend-310p", True)  # not a CPU build: auto never tries it
    assert auto_entry([entry("cpu-torch", False), entry("cpu-openvino", True)]).available
    assert auto_entry([entry("cpu-torch", None), outside]).available is None
    unavailable = auto_entry([entry("cpu-torch", False), outside])
    assert unavailable.available is False and "cpu-torch" in unavailable.reason
    assert auto_entry([]).precisions[0] == "auto"


def test_a_model_without_weights_runs_performance_only() -> None:
    catalogue = Catalogue(
        models=(ModelEntry("big", "B", "bert", "token-classification", 512, "d", None),)
    )
    config = Selection(model="big", profile="cpu-onnxruntime").to_config(catalogue)
    assert config.perf_only


def test_a_newer_figures_message_replaces_a_queued_one_without_losing_points() -> None:
    from kiln_lab.tui.messages import RunFiguresSampled
    from kiln_lab.tui.tail import Figures

    older = RunFiguresSampled("r", Figures({"throughput": {"x": 1}}, (1.0, 2.0), {"a": (1, 2)}))
    newer = RunFiguresSampled("r", Figures({"accuracy": {"y": 2}}, (3.0,), {"b": (3, 4)}))
    other_run = RunFiguresSampled("s", Figures({}, (9.0,), {}))
    assert older.can_replace(newer)
    assert newer.figures.throughput_points == (1.0, 2.0, 3.0)
    assert set(newer.figures.latest) == {"throughput", "accuracy"}
    assert newer.figures.progress == {"a": (1, 2), "b": (3, 4)}
    assert not newer.can_replace(other_run)


def test_benchmark_cells_survive_collapsing_and_draw_as_a_grid() -> None:
    from kiln_lab.tui.messages import RunFiguresSampled
    from kiln_lab.tui.widgets.throughput_pane import render_throughput

    cells = fake_runs.benchmark_cells((1, 8, 32), (32, 64, 128))
    ordered, first = split_batch(cells[:4])
    _, second = split_batch(cells[4:])
    assert len(first.benchmark_cells) == 4  # one poll, four cells: none lost to collapsing
    assert ordered == [] and first.throughput_points == ()  # a cell is not an eval sample
    older, newer = RunFiguresSampled("r", first), RunFiguresSampled("r", second)
    assert older.can_replace(newer)
    view = RunView("r")
    for cell in newer.figures.benchmark_cells:
        view.add_benchmark_cell(cell)
    assert sorted(view.benchmark_grid()) == [(b, s) for b in (1, 8, 32) for s in (32, 64, 128)]
    text = render_throughput(view, 48, 7).plain.splitlines()
    assert text[0].startswith("samples/s · batch")
    assert text[1].split() == ["b", "╲", "s", "32", "64", "128"]
    assert text[2].split()[0] == "1" and text[4].split()[0] == "32"
    assert text[4].split()[1] == "1,000█"  # the fastest cell has the full block
    compact = render_throughput(view, 48, 4).plain.splitlines()
    assert [line.split()[0] for line in compact] == ["b", "1", "8", "32"]  # no title
    short = render_throughput(view, 48, 3).plain.splitlines()
    assert len(short) == 3 and short[-1] == "… 2 more batch sizes"


def test_a_finished_runs_grid_comes_from_its_result() -> None:
    view = RunView("r")
    view.result = RunResult.from_dict(
        {"benchmark": {"cells": [{"batch_size": 4, "seq_len": 16, "samples_per_s": 9.5}]}}
    )
    assert view.benchmark_grid()[(4, 16)].samples_per_s == 9.5
    view.apply_metric("throughput", {"samples_per_s": 3.0})  # an evaluation sample: no cell
    # Even one that names a shape: cells are recognised by their event type, not by keys.
    view.apply_metric("throughput", {"samples_per_s": 3.0, "batch_size": 1, "seq_len": 8})
    assert list(view.benchmark_grid()) == [(4, 16)]


def test_a_cell_event_applied_in_order_joins_the_grid() -> None:
    view = RunView("r")
    view.apply_all(fake_runs.benchmark_cells((2,), (16, 32)))
    grid = view.benchmark_grid()
    assert sorted(grid) == [(2, 16), (2, 32)]
    assert grid[(2, 16)].latency.p99_ms == 1.0 and grid[(2, 16)].source == "kiln"
    # A cell is also the run's latest throughput figure, as before cells had an event.
    assert view.throughput is not None and view.throughput["seq_len"] == 32
    assert len(view.history) == 2


def test_the_report_and_the_app_pick_the_same_fp32_baseline() -> None:
    """Both read core.baseline: the app's accuracy pane and `kiln report` name one run.

    The two rules it replaced disagreed: the report took the first fp32 run with the same
    store label (a performance-only or 40-example smoke run would do), the app the newest
    scored run on the same data and example count.
    """
    from kiln_lab.core.baseline import baseline_for

    target = record("int8", precision="int8")
    history = [
        record("perf", perf_only=True),
        record("smoke", examples=40),
        record("other-data", dataset="msra"),
        record("good"),
    ]
    app = fp32_reference(
        history, model="m", dataset=("peoples-daily-1998", "test"), examples=200, exclude="int8"
    )
    assert app is not None and app.id == "good"
    assert baseline_for(target, history) is app


def test_an_auto_run_shows_its_choice_once_resolve_has_made_it() -> None:
    from kiln_lab.core.events import StageFinished
    from kiln_lab.tui.widgets.title_bar import title_text

    view = RunView("r9")
    view.apply_record("running", {"model": "m", "profile": "auto", "precision": "auto"}, None)
    assert view.build == ("auto", "auto", False)
    assert "m · auto · auto" in title_text("Main", view, 0.0).plain
    chosen = {"profile": "cpu-openvino", "precision": "bf16", "why": "fastest", "cached": False}
    view.apply(StageFinished("resolve", 31.5, {"auto": chosen, "profile": "cpu-openvino"}))
    assert view.build == ("cpu-openvino", "bf16", True)
    assert "m · auto: cpu-openvino · bf16" in title_text("Main", view, 0.0).plain
    named = RunView("r10")
    named.apply_record("running", {"model": "m", "profile": "cpu-torch", "precision": "fp32"}, None)
    assert named.build == ("cpu-torch", "fp32", False)
