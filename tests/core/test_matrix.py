"""``kiln matrix`` without Ray: the plan and its reasons, the store's matrix tables (and
their migration from a version-1 store), resuming by the same command, the table."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest

from kiln_lab.core.errors import MatrixNotFound, ToolchainMissing
from kiln_lab.core.matrix.cells import complete, open_matrix
from kiln_lab.core.matrix.hosts import SLOTS_RESOURCE, host_offer, ray_start_command
from kiln_lab.core.matrix.plan import MatrixSpec, plan
from kiln_lab.core.matrix.table import matrix_json, matrix_rows, within_budget
from kiln_lab.core.store import APPLICATION_ID, SCHEMA_VERSION, RunStore

SPEC = MatrixSpec(
    models=("zh-ner-tiny", "zh-senti-tiny"),
    profiles=("cpu-onnxruntime", "cpu-openvino"),
    precisions=("fp32", "int8"),
)


def test_plan_keeps_every_cell_and_says_why_one_cannot_run(kiln_home: Path) -> None:
    planned = plan(SPEC)
    assert [(p.cell.model, p.cell.profile, p.cell.precision) for p in planned][:3] == [
        ("zh-ner-tiny", "cpu-onnxruntime", "fp32"),
        ("zh-ner-tiny", "cpu-onnxruntime", "int8"),
        ("zh-ner-tiny", "cpu-openvino", "fp32"),
    ]
    reasons = {(p.cell.model, p.cell.profile, p.cell.precision): p.reason for p in planned}
    assert len(reasons) == 8
    runnable = [p for p in planned if p.reason is None]
    assert len(runnable) == 8 and all(p.config is not None for p in runnable)
    half = plan(
        MatrixSpec(models=("zh-ner-tiny",), profiles=("cpu-openvino",), precisions=("fp16",))
    )
    (reason,) = [p.reason for p in half]
    assert reason and "does not offer fp16" in reason and "fp32, bf16, int8" in reason


def test_unknown_model_and_profile_unavailable_here_are_reasons(kiln_home: Path) -> None:
    spec = MatrixSpec(models=("no-such-model", "zh-ner-tiny"), profiles=("cuda-onnxruntime",))
    here = {p.cell.model: p.reason for p in plan(spec)}
    assert "no-such-model" in here["no-such-model"]
    assert "cannot run here" in here["zh-ner-tiny"]
    # On a cluster, availability is the hosts' business: the driver lets it through.
    away = {p.cell.model: p.reason for p in plan(spec, on_this_host=False)}
    assert away["zh-ner-tiny"] is None


def test_spec_refuses_unknown_axes_and_fingerprints_what_was_asked() -> None:
    with pytest.raises(Exception, match="unknown precision"):
        MatrixSpec(models=("m",), profiles=("p",), precisions=("fp64",))
    with pytest.raises(Exception, match="at least one model"):
        MatrixSpec(models=(), profiles=("p",))
    same = MatrixSpec.from_dict(json.loads(json.dumps(SPEC.to_dict())))
    assert same == SPEC and same.fingerprint() == SPEC.fingerprint()
    assert MatrixSpec(**{**SPEC.__dict__, "limit": 5}).fingerprint() != SPEC.fingerprint()


def test_a_version_1_store_gains_the_matrix_tables_and_keeps_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE runs (id TEXT PRIMARY KEY, created REAL NOT NULL, updated REAL NOT NULL,"
        " status TEXT NOT NULL, model TEXT NOT NULL, dataset TEXT NOT NULL, profile TEXT NOT"
        " NULL, precision TEXT NOT NULL, config TEXT NOT NULL, result TEXT, error TEXT,"
        " pid INTEGER, cancel_requested INTEGER NOT NULL DEFAULT 0);"
        "INSERT INTO runs VALUES ('old-run', 1, 1, 'succeeded', 'm', 'd', 'p', 'fp32', '{}',"
        " NULL, NULL, NULL, 0);"
    )
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    store = RunStore(path)
    assert store.run("old-run").status == "succeeded"
    assert SCHEMA_VERSION >= 2
    assert store._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.matrices() == []
    matrix_id = store.create_matrix({"k": 1}, "h", [({"model": "m"}, None, "why")])
    assert store.matrix(matrix_id[:12]).id == matrix_id
    (cell,) = store.matrix_cells(matrix_id)
    assert cell.reason == "why" and cell.run_id is None
    with pytest.raises(MatrixNotFound):
        store.matrix("mx-nothing")


def test_the_same_command_resumes_its_unfinished_matrix(kiln_home: Path) -> None:
    store = RunStore()
    first, resumed = open_matrix(store, SPEC, cluster=None)
    assert not resumed and not complete(store, first)
    again, resumed = open_matrix(store, SPEC, cluster=None)
    assert (again, resumed) == (first, True)
    other, resumed = open_matrix(store, SPEC, cluster=None, new=True)
    assert other != first and not resumed
    # A matrix with nothing left to do is not resumed: the command measures again.
    only_skipped = MatrixSpec(
        models=("zh-ner-tiny",), profiles=("cpu-openvino",), precisions=("fp16",)
    )
    done, _ = open_matrix(store, only_skipped, cluster=None)
    assert complete(store, done)
    assert open_matrix(store, only_skipped, cluster=None)[0] != done


def _finished(store: RunStore, profile: str, precision: str, value: float, speed: float) -> str:
    run_id = store.create_run(
        {"model": "m", "profile": profile, "precision": precision, "dataset_label": "d:test"}
    )
    store.set_status(
        run_id,
        "succeeded",
        result={
            "dataset": "d",
            "split": "test",
            "metrics": {"accuracy": value},
            "throughput": {"samples_per_s": speed},
            "latency": {"p99_ms": 1000.0 / speed},
            "reference": [{"metric": "accuracy", "value": 0.90, "precision": "fp32"}],
        },
    )
    return run_id


def test_table_deltas_per_profile_and_the_fastest_cell_within_budget(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    figures = [  # profile, precision, accuracy, samples/s
        ("ort", "fp32", 0.900, 100.0),
        ("ort", "int8", 0.895, 300.0),  # -0.5 points: within the 1-point budget
        ("ov", "fp32", 0.902, 150.0),
        ("ov", "bf16", 0.880, 400.0),  # -2.2 points: fastest, but over budget
    ]
    cells = [({"model": "m", "profile": p, "precision": q}, {}, None) for p, q, _, _ in figures]
    cells.append(({"model": "m", "profile": "ov", "precision": "int8"}, None, "not offered"))
    matrix_id = store.create_matrix({"accuracy_budget": 1.0}, "h", cells)
    for position, (profile, precision, value, speed) in enumerate(figures):
        run_id = _finished(store, profile, precision, value, speed)
        store.update_cell(matrix_id, position, run_id=run_id, host="lab-1")
    rows = matrix_rows(store, matrix_id)
    by = {(r["profile"], r["precision"]): r for r in rows}
    assert by[("ort", "int8")]["delta_vs_fp32"] == pytest.approx(-0.005)
    assert by[("ort", "int8")]["fp32_run"] == by[("ort", "fp32")]["run"]
    assert by[("ov", "bf16")]["delta_vs_fp32"] == pytest.approx(-0.022)  # vs ov's fp32
    assert by[("ov", "fp32")]["delta_vs_published"] == pytest.approx(0.002)
    assert [(r["profile"], r["precision"]) for r in rows if r["fastest"]] == [("ort", "int8")]
    assert by[("ov", "int8")]["status"] == "skipped" and by[("ov", "int8")]["reason"]
    data = matrix_json(store, matrix_id)
    assert data["counts"] == {"succeeded": 4, "skipped": 1}
    assert data["fastest"][0]["samples_per_s"] == 300.0
    assert rows[0]["host"] == "lab-1" and rows[0]["latency_p99_ms"] == pytest.approx(10.0)


def test_budget_in_points_or_percent() -> None:
    assert within_budget(-0.009, 0.9, 1.0, "absolute")
    assert not within_budget(-0.011, 0.9, 1.0, "absolute")
    assert within_budget(-0.0089, 0.9, 1.0, "relative")  # 1% of 90 = 0.9 points
    assert not within_budget(-0.0091, 0.9, 1.0, "relative")
    assert not within_budget(None, 0.9, 1.0, "absolute")


def test_a_host_offers_its_available_profiles_as_ray_resources(kiln_home: Path) -> None:
    offer = host_offer(slots=2)
    assert offer.resources[SLOTS_RESOURCE] == 2.0
    assert offer.resources["kiln-profile:cpu-onnxruntime"] == 2.0  # CPU profile: per slot
    assert "cpu-onnxruntime" in offer.profiles
    assert "ascend-310p" in offer.unavailable and "kiln-profile:ascend-310p" not in offer.resources
    argv = ray_start_command(offer, head=False, address="10.0.0.1:6379", object_store_mb=128)
    assert argv[1:3] == ["start", "--address=10.0.0.1:6379"]
    resources = json.loads(next(a for a in argv if a.startswith("--resources=")).split("=", 1)[1])
    assert resources == offer.resources
    assert f"--object-store-memory={128 * 2**20}" in argv
    assert "--disable-usage-stats" in argv  # a lab's hosts never report to Ray's servers
    head = ray_start_command(offer, head=True)
    assert "--head" in head and "--include-dashboard=false" in head


def test_without_ray_cluster_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from kiln_lab.core.matrix.cluster import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ToolchainMissing) as caught:
        import_ray()
    assert "kiln-lab[cluster]" in (caught.value.hint or "")


def test_local_cells_side_by_side_only_while_their_cores_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kiln_lab.core.matrix import local

    store = RunStore(tmp_path / "runs.sqlite")
    cells = [({"model": "m", "profile": p, "precision": "fp32"}, {}, None) for p in "abcd"]
    matrix_id = store.create_matrix({}, "h", cells)
    threads = {"a": 1, "b": 1, "c": None, "d": 1}  # c leaves threads to its runtime
    monkeypatch.setattr(local, "cores_taken", lambda name, usable: threads[name] or usable)
    driver = local.LocalDriver(store, matrix_id, jobs=3)
    driver.usable = 2
    started: list[str] = []
    monkeypatch.setattr(
        driver,
        "_start",
        lambda cell, status, cores: (
            started.append(cell.cell["profile"]),
            driver.running.__setitem__(cell.cell["profile"], local._Running(cell, cores)),
        ),
    )
    waiting = driver._start_what_fits(local.cells_to_run(store, matrix_id))
    assert started == ["a", "b"]  # 1 + 1 core of 2: c (all cores) and d wait
    assert [c.cell["profile"] for c in waiting] == ["c", "d"]
    driver.running.clear()
    assert [c.cell["profile"] for c in driver._start_what_fits(waiting)] == ["d"]
    assert started[-1] == "c"  # alone, it takes the whole machine


def test_report_takes_a_matrix_id(kiln_home: Path, capsys: pytest.CaptureFixture) -> None:
    from kiln_lab.tui.cli import main

    store = RunStore()
    cells = [({"model": "m", "profile": "ort", "precision": q}, {}, None) for q in ("fp32", "int8")]
    cells.append(({"model": "m", "profile": "ort", "precision": "bf16"}, None, "not offered"))
    matrix_id = store.create_matrix({}, "h", cells)
    runs = [
        _finished(store, "ort", q, v, s)
        for q, v, s in (("fp32", 0.9, 100.0), ("int8", 0.89, 200.0))
    ]
    for position, run_id in enumerate(runs):
        store.update_cell(matrix_id, position, run_id=run_id)
    out = kiln_home / "report"
    assert main(["report", matrix_id, "--out", str(out), "--format", "json", "--json"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert [row["run"] for row in report["comparison"]] == runs  # the cells that ran, in order
    assert report["comparison"][1]["delta_vs_fp32"] == pytest.approx(-0.01)
