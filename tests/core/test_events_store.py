"""The run store: events round-trip, metrics and artifacts land, bad files are refused."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kiln_lab.core.errors import RunNotFound, StoreError
from kiln_lab.core.events import (
    EVENT_TYPES,
    ArtifactWritten,
    LogLine,
    MetricSampled,
    RunFinished,
    StageFinished,
    StageStarted,
    from_record,
    to_record,
)
from kiln_lab.core.store import RunStore


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "runs.sqlite")


def test_every_event_kind_round_trips() -> None:
    samples = [
        StageStarted("load", "why"),
        StageFinished("load", 1.5, {"parameters": 10}),
        LogLine("export", "info", "日本語 ok", "kiln_lab.core.export"),
        MetricSampled("evaluate", "accuracy", {"entity_f1": 0.9, "per_type": {"PER": {}}}),
        ArtifactWritten("export", "onnx", "/x/model.onnx", "ab", 3, {"cached": True}),
        RunFinished("succeeded", {"metrics": {"accuracy": 1.0}}),
    ]
    for event in samples:
        assert from_record(*to_record(event)) == event
    assert {type(e).kind for e in samples} <= set(EVENT_TYPES)


def test_a_payload_is_written_as_a_deep_copy_would_write_it() -> None:
    """Fields are read shallowly for speed; nested dataclasses, tuples and values JSON
    cannot write (a path) still come out as ``dataclasses.asdict`` then ``str`` wrote
    them."""
    import dataclasses
    import json

    from kiln_lab.core.metrics.intervals import Interval

    event = MetricSampled(
        "evaluate",
        "accuracy",
        {
            "interval": Interval(0.1, 0.2, 0.95, "wilson"),
            "nested": {
                "shape": (32, 128),
                "path": Path("/x/model.onnx"),
                3: [Interval(0, 1, 0.9, "w")],
            },
        },
    )
    deep = json.dumps(dataclasses.asdict(event), ensure_ascii=False, default=str)
    assert to_record(event) == ("metric_sampled", deep)
    assert json.loads(to_record(event)[1])["values"]["interval"]["method"] == "wilson"


def test_unknown_event_kind_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="newer Kiln"):
        from_record("from_the_future", "{}")


def test_append_and_tail_in_order(store: RunStore) -> None:
    run_id = store.create_run({"model": "m", "profile": "p", "precision": "fp32"})
    store.append(run_id, StageStarted("resolve"))
    store.append_many(run_id, [LogLine("resolve", "info", f"line {i}") for i in range(5)])
    store.append(run_id, MetricSampled("evaluate", "throughput", {"samples_per_s": 12.5}))
    store.append(run_id, ArtifactWritten("export", "onnx", "/a.onnx", "h", 1))
    store.append(run_id, RunFinished("succeeded"))
    seqs = [e.seq for e in store.events(run_id)]
    assert seqs == list(range(1, 10))
    assert [e.seq for e in store.events(run_id, after=7)] == [8, 9]
    assert [s.event for s in store.tail(run_id)][-1] == RunFinished(
        "succeeded", ts=store.events(run_id)[-1].event.ts
    )
    assert store.metric_series(run_id, "throughput", "samples_per_s")[0][1] == 12.5
    assert store.artifacts(run_id)[0]["path"] == "/a.onnx"


def test_run_lookup_by_prefix_and_missing(store: RunStore) -> None:
    run_id = store.create_run({"model": "m"})
    assert store.run(run_id[:15]).id == run_id
    with pytest.raises(RunNotFound, match="kiln runs"):
        store.run("nope")


def test_store_file_is_user_only(tmp_path: Path) -> None:
    RunStore(tmp_path / "s.sqlite").close()
    mode = stat.S_IMODE(os.stat(tmp_path / "s.sqlite").st_mode)
    assert mode & 0o077 == 0


def test_foreign_database_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE stuff (x)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a Kiln run store"):
        RunStore(path)
    assert path.read_bytes() == before


def test_corrupt_file_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "broken.sqlite"
    path.write_bytes(b"this is not sqlite at all" * 100)
    before = path.read_bytes()
    with pytest.raises(StoreError) as info:
        RunStore(path)
    assert "never overwrites" in (info.value.hint or "") or "not a Kiln" in info.value.message
    assert path.read_bytes() == before


def test_dead_worker_marks_run_interrupted(store: RunStore) -> None:
    run_id = store.create_run({"model": "m"})
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    store.set_status(run_id, "running", pid=proc.pid)
    assert store.mark_interrupted_if_dead(run_id)
    assert store.run(run_id).status == "interrupted"
    assert isinstance(store.events(run_id)[-1].event, RunFinished)


def test_cancel_flag(store: RunStore) -> None:
    run_id = store.create_run({"model": "m"})
    assert not store.cancel_requested(run_id)
    store.request_cancel(run_id)
    assert store.cancel_requested(run_id)
