"""``kiln matrix --cluster`` on a real Ray cluster started on this machine.

``ray.cluster_utils.Cluster`` starts a head and worker nodes as separate raylets here.
The head offers no Kiln profile (as a lab's head may not); each worker node offers the
profiles it is given as ``kiln-profile:NAME`` resources plus one ``kiln-slots``. Ray is
sized explicitly for these 2-core machines: one CPU per node, a small object store, no
dashboard (Ray's defaults reserve 30% of memory for the object store and start one).

Cells run the built-in trained models on a few examples (``limit``), so each is a real
run in a real worker on the node Ray chose, a few seconds long.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kiln_lab.core.events import LogLine, RunFinished, RunStarted, StageStarted
from kiln_lab.core.matrix.cells import open_matrix
from kiln_lab.core.matrix.cluster import ClusterDriver
from kiln_lab.core.matrix.hosts import SLOTS_RESOURCE, profile_resource
from kiln_lab.core.matrix.plan import MatrixSpec
from kiln_lab.core.store import RunStore

ray = pytest.importorskip("ray", reason="the cluster extra (ray) is not installed")
from ray.cluster_utils import Cluster  # noqa: E402

NODE = {"num_cpus": 1, "object_store_memory": 80 * 2**20}
HEAD = {**NODE, "include_dashboard": False}


def _offer(*profiles: str) -> dict[str, float]:
    return {SLOTS_RESOURCE: 1.0, **{profile_resource(p): 1.0 for p in profiles}}


@pytest.fixture
def cluster(tmp_path: Path, dataset_cache: Path, roofline_cache: Path) -> Iterator[Any]:
    """A head plus nodes added by the test; every raylet shares one KILN_HOME here."""
    home = tmp_path / "cluster-home"
    (home / "cache").mkdir(parents=True)
    (home / "cache" / "datasets").symlink_to(dataset_cache, target_is_directory=True)
    (home / "cache" / "roofline").symlink_to(roofline_cache, target_is_directory=True)
    before = os.environ.get("KILN_HOME")
    os.environ["KILN_HOME"] = str(home)  # the raylets (and the cells) inherit it
    started = Cluster(initialize_head=True, head_node_args=HEAD)
    try:
        yield started
    finally:
        ray.shutdown()
        started.shutdown()
        if before is None:
            os.environ.pop("KILN_HOME", None)
        else:
            os.environ["KILN_HOME"] = before


def _drive(store: RunStore, matrix_id: str, address: str, lines: list, **kw: Any) -> None:
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    ClusterDriver(
        store, matrix_id, notify=lambda line: lines.append((time.monotonic(), line)), **kw
    ).run()


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    "models",
    [
        # The default suite's one Ray test: a cell on each node, one unschedulable.
        ("zh-ner-tiny",),
        # Six cells, four of them run: two per node, one at a time each (one slot).
        pytest.param(("zh-ner-tiny", "zh-senti-tiny"), marks=pytest.mark.slow),
    ],
)
def test_cells_land_on_the_node_offering_their_profile(
    cluster: Any, tmp_path: Path, models: tuple[str, ...]
) -> None:
    onnx = cluster.add_node(**NODE, resources=_offer("cpu-onnxruntime"))
    openvino = cluster.add_node(**NODE, resources=_offer("cpu-openvino"))
    cluster.wait_for_nodes()
    store = RunStore(tmp_path / "driver.sqlite")
    spec = MatrixSpec(
        models=models,
        profiles=("cpu-onnxruntime", "cpu-openvino", "cpu-torch"),
        precisions=("fp32",),
        limit=24,
    )
    matrix_id, _ = open_matrix(store, spec, cluster=cluster.address)
    lines: list = []
    began = time.monotonic()
    _drive(store, matrix_id, cluster.address, lines)

    cells = store.matrix_cells(matrix_id)
    assert len(cells) == 3 * len(models)
    nodes = {"cpu-onnxruntime": onnx.node_id, "cpu-openvino": openvino.node_id}
    for cell in cells:
        profile = cell.cell["profile"]
        if profile == "cpu-torch":  # no node offers it: reported, with no run
            assert cell.run_id is None
            assert "no host in the cluster offers profile cpu-torch" in (cell.reason or "")
            continue
        assert cell.node_id == nodes[profile], (cell.label, cell.node_id)
        record = store.run(cell.run_id)
        assert record.status == "succeeded", record.error
        events = [s.event for s in store.events(cell.run_id)]
        assert isinstance(events[0], LogLine) and "placed by Ray" in events[0].message
        assert any(isinstance(e, RunStarted) for e in events)
        assert {e.stage_name for e in events if isinstance(e, StageStarted)} >= {
            "resolve",
            "evaluate",
        }
        assert isinstance(events[-1], RunFinished) and events[-1].status == "succeeded"
        assert record.run_result.metrics is not None and record.run_result.examples == 24
        assert store.load_checkpoints(cell.run_id, "evaluate/")  # relayed with the events
    # "at once": before the first cell could even have been placed and run
    unschedulable = [t for t, line in lines if "cannot be scheduled" in line]
    assert len(unschedulable) == len(models) and max(unschedulable) - began < 5.0


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_node_lost_mid_cell_and_the_cell_finishes_on_the_other(
    cluster: Any, tmp_path: Path
) -> None:
    first = cluster.add_node(**NODE, resources=_offer("cpu-onnxruntime"))
    second = cluster.add_node(**NODE, resources=_offer("cpu-onnxruntime"))
    cluster.wait_for_nodes()
    store = RunStore(tmp_path / "driver.sqlite")
    spec = MatrixSpec(models=("zh-senti-tiny",), profiles=("cpu-onnxruntime",), limit=1000)
    matrix_id, _ = open_matrix(store, spec, cluster=cluster.address)
    lines: list = []
    ray.init(address=cluster.address, log_to_driver=False)
    driver = threading.Thread(
        target=_drive, args=(store, matrix_id, cluster.address, lines), daemon=True
    )
    driver.start()
    watcher = RunStore(store.path)
    deadline = time.monotonic() + 120
    killed = None
    while killed is None and time.monotonic() < deadline:
        (cell,) = watcher.matrix_cells(matrix_id)
        # Mid-evaluation, once some batches' checkpoints have reached the driver's store.
        if cell.run_id and watcher.load_checkpoints(cell.run_id, "evaluate/"):
            assert not watcher.run(cell.run_id).finished, "evaluation ended before the kill"
            killed = first if cell.node_id == first.node_id else second
            cluster.remove_node(killed)
        time.sleep(0.1)
    assert killed is not None, "the cell never reached its evaluation"
    driver.join(timeout=150)
    assert not driver.is_alive()
    (cell,) = store.matrix_cells(matrix_id)
    survivor = second if killed is first else first
    assert cell.node_id == survivor.node_id and cell.attempts == 2
    record = store.run(cell.run_id)
    assert record.status == "succeeded", record.error
    events = [s.event for s in store.events(cell.run_id)]
    lost = [e for e in events if isinstance(e, LogLine) and "lost mid-cell" in e.message]
    assert lost and "retrying" in lost[0].message
    finishes = [e.status for e in events if isinstance(e, RunFinished)]
    assert finishes == ["interrupted", "succeeded"]
    # The second host went on from the batches the lost one had finished.
    assert any(isinstance(e, LogLine) and "resuming:" in e.message for e in events)
