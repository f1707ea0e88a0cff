"""Taking the build away and keeping the cache in bounds: ``kiln export``, ``kiln cache
ls`` (which runs use each entry), ``kiln cache prune`` (never an entry a running run
uses), the size limit's settings and the app's warning."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from kiln_lab.core import cache
from kiln_lab.core.errors import ConfigError, ExportError
from kiln_lab.core.events import ArtifactWritten, RunFinished
from kiln_lab.core.export import file_sha256
from kiln_lab.core.run_export import export_run
from kiln_lab.core.settings import cache_max_bytes, parse_size
from kiln_lab.core.store import RunStore
from kiln_lab.tui.cli import main

HOUR = 3600.0


def _entry(home: Path, key: str, size: int, age_s: float, *, meta: bool = True) -> Path:
    """A cache entry of ``size`` bytes last written ``age_s`` seconds ago."""
    folder = home / "cache" / "artifacts" / key
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(os.urandom(size))
    if meta:
        (folder / "meta.json").write_text(json.dumps({"opset": 17, "key": key}))
    stamp = time.time() - age_s
    for path in (*folder.iterdir(), folder):
        os.utime(path, (stamp, stamp))
    return folder / "model.onnx"


def _run(store: RunStore, files: dict[str, Path], *, running: bool = False, **config: str) -> str:
    """A run in the store that recorded ``files`` (artifact name -> path)."""
    run_id = store.create_run(
        {"model": "m", "profile": "cpu-onnxruntime", "precision": "fp32", **config}
    )
    store.append_many(
        run_id,
        [
            ArtifactWritten("export", name, str(path), file_sha256(path), path.stat().st_size)
            for name, path in files.items()
        ],
    )
    if running:
        store.set_status(run_id, "running", pid=os.getpid())
    else:
        store.finish_run(run_id, RunFinished("succeeded", result={"model": config.get("model")}))
    return run_id


def test_prune_keeps_what_running_runs_use_and_removes_least_recently_used(
    kiln_home: Path,
) -> None:
    old = _entry(kiln_home, "old" * 4, 1000, 30 * HOUR)
    busy = _entry(kiln_home, "busy" * 3, 1000, 40 * HOUR)
    recent = _entry(kiln_home, "recent" * 2, 1000, 2 * HOUR)
    _entry(kiln_home, ".stale-build", 100, 5 * HOUR, meta=False)
    _entry(kiln_home, ".live-build", 100, 60, meta=False)
    store = RunStore()
    _run(store, {"onnx": old}, model="done")
    time.sleep(0.01)
    _run(store, {"onnx": busy}, running=True, model="going")

    # Least recently used: "recent" was written 2 h ago; "old" was written 30 h ago but a
    # run recorded it just now, which counts as a use.
    pruned = cache.prune(2500, store)
    removed = {e.key for e in pruned.removed}
    assert removed == {".stale-build", "recent" * 2}  # the stale build, then the LRU one
    assert pruned.after <= 2500 < pruned.after + 1000  # it stopped once under the limit
    assert pruned.before - pruned.after == sum(e.size for e in pruned.removed)
    assert busy.exists() and old.exists() and not recent.exists()

    written_since = _entry(kiln_home, "fresh" * 3, 1000, 0)  # built since the run started
    pruned = cache.prune(0, store)
    assert {e.key for e in pruned.removed} == {"old" * 4}
    assert {e.key for e in pruned.kept_in_use} == {"busy" * 3, "fresh" * 3, ".live-build"}
    assert busy.exists() and written_since.exists()


def test_cache_ls_names_model_precision_profile_and_runs(
    kiln_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _entry(kiln_home, "abc" * 8, 500, HOUR)
    store = RunStore()
    run_id = _run(store, {"onnx-int8": path}, model="zh-ner-tiny", precision="int8")
    _entry(kiln_home, "orphan" * 4, 10, HOUR)
    assert main(["cache", "ls", "--json"]) == 0
    listing = {e["key"]: e for e in json.loads(capsys.readouterr().out)}
    used = listing["abc" * 8]["runs"]
    assert [(u["run_id"], u["model"], u["precision"]) for u in used] == [
        (run_id, "zh-ner-tiny", "int8")
    ]
    assert listing["orphan" * 4]["runs"] == []
    assert main(["cache", "ls"]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if "abc" * 8 in line)
    assert "zh-ner-tiny" in row and "int8" in row and run_id in row
    assert "none recorded" in next(line for line in table.splitlines() if "orphan" in line)


def test_prune_command_uses_the_limit_given(
    kiln_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _entry(kiln_home, "a" * 12, 3000, 3 * HOUR)
    _entry(kiln_home, "b" * 12, 3000, 2 * HOUR)
    assert main(["cache", "prune", "--max-size", "4k", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["removed"] == ["a" * 12] and 3000 < result["size_after"] <= 4000


def test_the_limit_comes_from_env_then_config_then_default(
    kiln_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert [parse_size(s) for s in ("4G", "500M", "1.5GB", "2GiB", "123", 7)] == [
        4 * 10**9,
        500 * 10**6,
        1_500_000_000,
        2 * 1024**3,
        123,
        7,
    ]
    with pytest.raises(ConfigError, match="not a size"):
        parse_size("lots")
    monkeypatch.delenv("KILN_CACHE_MAX_SIZE", raising=False)
    assert cache_max_bytes() == 4 * 10**9
    (kiln_home / "config.yaml").write_text("cache_max_size: 1G\n")
    assert cache_max_bytes() == 10**9
    monkeypatch.setenv("KILN_CACHE_MAX_SIZE", "2M")
    assert cache_max_bytes() == 2 * 10**6
    monkeypatch.delenv("KILN_CACHE_MAX_SIZE")
    (kiln_home / "config.yaml").write_text("# limits\ncache_max_sise: 1G\n")
    with pytest.raises(ConfigError, match="cache_max_sise") as info:
        cache_max_bytes()
    assert info.value.line == 2 and "cache_max_size" in str(info.value.hint)


def test_the_app_warning_appears_only_over_the_limit(kiln_home: Path) -> None:
    _entry(kiln_home, "big" * 4, 5000, HOUR)
    assert cache.size_warning(limit=10_000) is None
    warning = cache.size_warning(limit=1000)
    assert warning is not None and "kiln cache prune" in warning and "1 entries" in warning


def test_export_copies_every_artifact_with_a_manifest(kiln_home: Path, tmp_path: Path) -> None:
    graph = _entry(kiln_home, "int8" * 4, 2000, HOUR)
    (graph.parent / "model.onnx.data").write_bytes(b"external weights")
    run_dir = kiln_home / "artifacts" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "report.json").write_text('{"model": "m"}')
    (run_dir / "keep_float.yaml").write_text("nodes_to_exclude: [a]\n")
    store = RunStore()
    run_id = _run(
        store,
        {
            "onnx-int8": graph,
            "report": run_dir / "report.json",
            "int8-override": run_dir / "keep_float.yaml",
        },
        model="m",
        precision="int8",
    )
    dest = tmp_path / "take-away"
    manifest = export_run(store, run_id, dest)
    files = {f["path"]: f for f in manifest["files"]}
    assert set(files) == {
        "onnx-int8/model.onnx",
        "onnx-int8/model.onnx.data",
        "onnx-int8/meta.json",
        "report/report.json",
        "int8-override/keep_float.yaml",
    }
    for relative, item in files.items():
        assert file_sha256(dest / relative) == item["sha256"]
        assert (dest / relative).stat().st_size == item["size"]
    on_disk = json.loads((dest / "manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(manifest, default=str))
    assert (on_disk["run_id"], on_disk["precision"], on_disk["profile"]) == (
        run_id,
        "int8",
        "cpu-onnxruntime",
    )
    with pytest.raises(ConfigError, match="not an empty directory"):
        export_run(store, run_id, dest)


def test_export_refuses_runs_it_cannot_take_whole(kiln_home: Path, tmp_path: Path) -> None:
    graph = _entry(kiln_home, "gone" * 4, 100, HOUR)
    store = RunStore()
    going = _run(store, {"onnx": graph}, running=True)
    with pytest.raises(ConfigError, match="still running"):
        export_run(store, going, tmp_path / "a")
    changed = _run(store, {"onnx": graph})
    graph.write_bytes(b"something else")
    with pytest.raises(ExportError, match="changed since the run recorded it"):
        export_run(store, changed, tmp_path / "b")
    graph.unlink()
    with pytest.raises(ExportError, match="no longer all there") as info:
        export_run(store, changed, tmp_path / "c")
    assert "run it again" in str(info.value.hint)
    assert not any(p.exists() for p in (tmp_path / "a", tmp_path / "b", tmp_path / "c"))
    assert not list(tmp_path.glob(".*export-tmp"))


@pytest.mark.slow
def test_a_real_int8_run_exports_its_graphs(
    tiny_assets: Path, kiln_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess
    import sys

    env = {**os.environ, "KILN_HOME": str(kiln_home), "NO_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "kiln_lab.tui.cli", "run", "--model", "tiny-senti-roberta"]
        + ["--precision", "int8", "--limit", "8", "--no-guard", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    run_id = json.loads(proc.stdout)["run_id"]
    assert main(["show", run_id]) == 0
    shown = capsys.readouterr().out
    assert "Artifacts" in shown and "onnx-int8" in shown and "report.json" in shown
    assert main(["export", run_id, "--to", str(tmp_path / "out"), "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    names = {f["artifact"] for f in manifest["files"]}
    assert {"onnx", "onnx-int8", "report"} <= names
    assert manifest["versions"]["packages"]["onnxruntime"]
