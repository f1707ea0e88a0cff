"""A damaged, empty, read-only or full run store: one line with the path and the fix.

Each case builds the fault where it happens in life (a file where KILN_HOME should be,
8 KB of garbage mid-file, an immutable file, a read-only mount, SQLite's own "disk is
full") and checks what the operator gets: no traceback, a non-zero exit naming the
file, and history still readable wherever the file itself is intact.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kiln_lab.core.errors import DiskFull, StoreError
from kiln_lab.core.events import LogLine, RunFinished
from kiln_lab.core.store import RunStore


def _kiln(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KILN_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "kiln_lab.tui.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _refused(proc: subprocess.CompletedProcess[str], path: Path, words: str) -> None:
    """Non-zero exit, one line on stderr naming ``path``, no traceback."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1 and str(path) in lines[0] and words in lines[0], proc.stderr
    assert "fix:" in lines[0]


def _store_with_runs(path: Path, runs: int = 3, events: int = 400) -> list[str]:
    store = RunStore(path)
    ids = []
    for _ in range(runs):
        run_id = store.create_run({"model": "tiny-ner-bert"})
        store.append_many(
            run_id, [LogLine("evaluate", "info", f"batch {i} " + "x" * 200) for i in range(events)]
        )
        store.finish_run(run_id, RunFinished("succeeded", result={"metrics": {}}))
        ids.append(run_id)
    store.close()
    return ids


def test_kiln_home_is_a_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("not a directory")
    _refused(_kiln(home, "runs"), home, "is a file, not a directory")


def test_zero_byte_store_is_refused_never_reused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "runs.sqlite").touch()
    _refused(_kiln(home, "runs", "--json"), home / "runs.sqlite", "empty (0-byte)")
    assert (home / "runs.sqlite").stat().st_size == 0, "the empty file was written to"


def test_a_new_store_appears_whole(tmp_path: Path) -> None:
    """Built under a temporary name and linked into place: no empty file, no leftovers."""
    RunStore(tmp_path / "runs.sqlite").close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.sqlite"]
    assert RunStore(tmp_path / "runs.sqlite").runs() == []


def test_garbage_in_the_middle_is_refused_by_every_command(tmp_path: Path) -> None:
    """8 KB over the middle of the file, header intact: refused at open, before
    ``runs``/``show``/``attach`` read from it or ``run`` writes into it."""
    home = tmp_path / "home"
    home.mkdir()
    store = home / "runs.sqlite"
    run_id = _store_with_runs(store)[0]
    size = store.stat().st_size
    with open(store, "r+b") as fh:
        fh.seek(size // 2)
        fh.write(random.Random(14).randbytes(8192))
    for args in (("runs",), ("show", run_id), ("attach", run_id, "--json")):
        _refused(_kiln(home, *args), store, "damaged")
    with pytest.raises(StoreError, match="damaged") as info:
        RunStore(store)
    assert ".recover" in (info.value.hint or "")


def test_immutable_store_reads_but_refuses_writes(tmp_path: Path) -> None:
    """``chattr +i`` (or, without it, a read-only file as a non-root user)."""
    home = tmp_path / "home"
    home.mkdir()
    store = home / "runs.sqlite"
    run_id = _store_with_runs(store, runs=1)[0]
    chattr = shutil.which("chattr")
    if chattr and subprocess.run([chattr, "+i", str(store)], capture_output=True).returncode == 0:
        undo = [chattr, "-i", str(store)]
    elif os.geteuid() != 0:
        store.chmod(0o444)
        undo = ["chmod", "600", str(store)]
    else:
        pytest.skip("root ignores file modes and chattr +i failed here (not ext4/xfs/btrfs?)")
    try:
        proc = _kiln(home, "show", run_id, "--json")
        assert proc.returncode == 0 and json.loads(proc.stdout)["status"] == "succeeded"
        opened = RunStore(store)
        assert opened.readonly and "read-only" in (opened.readonly_reason or "")
        with pytest.raises(StoreError, match="read-only") as info:
            opened.create_run({"model": "tiny-ner-bert"})
        assert info.value.path == str(store)
        opened.close()
    finally:
        subprocess.run(undo, check=True)


def _try_mount_tmpfs(where: Path, size: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")


def test_read_only_filesystem_keeps_history_readable(tmp_path: Path) -> None:
    mount = tmp_path / "ro"
    _try_mount_tmpfs(mount, "8m")
    try:
        run_id = _store_with_runs(mount / "runs.sqlite", runs=1)[0]
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        listed = _kiln(mount, "runs", "--json")
        assert listed.returncode == 0, listed.stderr
        assert [r["id"] for r in json.loads(listed.stdout)] == [run_id]
        shown = _kiln(mount, "show", run_id, "--json")
        assert shown.returncode == 0 and json.loads(shown.stdout)["status"] == "succeeded"
        proc = _kiln(mount, "run", "--model", "zh-ner-tiny", "--limit", "4")
        assert proc.returncode != 0 and "Traceback" not in proc.stderr
        assert str(mount) in proc.stderr and "Read-only file system" in proc.stderr
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_sqlite_disk_full_is_one_line_and_rolls_back(tmp_path: Path) -> None:
    """SQLite's own "database or disk is full" (here: a page limit) and the ROLLBACK that
    then fails with "no transaction is active" become one DiskFull naming the store."""
    path = tmp_path / "runs.sqlite"
    store = RunStore(path)
    run_id = store.create_run({"model": "tiny-ner-bert"})
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages + 1}")
    with pytest.raises(DiskFull) as info:
        store.append_many(run_id, [LogLine(None, "info", "x" * 5000) for _ in range(50)])
    assert info.value.path == str(path) and "free there now" in info.value.message
    assert store.events(run_id) == []  # rolled back whole
    store.close()


def test_a_full_disk_failure_is_recorded_once_space_allows(tmp_path: Path) -> None:
    """The worker's reserve is released and the run recorded failed with the cause."""
    from kiln_lab.core.disk_reserve import DiskReserve, record_disk_full, run_with_reserve
    from kiln_lab.core.store_open import store_disk_full

    path = tmp_path / "runs.sqlite"
    store = RunStore(path)
    run_id = store.create_run({"model": "tiny-ner-bert"})
    store.set_status(run_id, "running", pid=os.getpid())

    def fills_up() -> int:
        assert (tmp_path / f".reserve-{os.getpid()}").stat().st_size > 0
        try:
            raise store_disk_full(path)
        except DiskFull:
            raise StoreError("recording the failure failed too") from store_disk_full(path)

    assert run_with_reserve(store, run_id, fills_up) == 1
    record = store.run(run_id)
    assert record.status == "failed" and record.error["kind"] == "DiskFull"
    assert str(path) in record.error["message"]
    assert not list(tmp_path.glob(".reserve-*"))
    # Still full after the release: it gives up after the wait rather than hang forever.
    reserve = DiskReserve(tmp_path)
    real = store.finish_run
    store.finish_run = lambda *a, **k: (_ for _ in ()).throw(store_disk_full(path))  # type: ignore[method-assign]
    assert not record_disk_full(
        store, run_id, store_disk_full(path), reserve, wait_s=0.05, poll_s=0.01
    )
    store.finish_run = real  # type: ignore[method-assign]
    store.close()


def test_a_stale_half_built_store_is_removed(tmp_path: Path) -> None:
    stale = tmp_path / ".runs.sqlite.abc123.new"
    stale.write_bytes(b"half")
    os.utime(stale, (0, 0))
    RunStore(tmp_path / "runs.sqlite").close()
    assert not stale.exists()


def test_quick_check_finds_a_damaged_page_in_a_large_store(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    _store_with_runs(path, runs=5)
    with open(path, "r+b") as fh:
        fh.seek(path.stat().st_size - 3 * 4096)
        fh.write(b"\xff" * 4096)
    with pytest.raises(StoreError, match="damaged"):
        RunStore(path)
    assert sqlite3.connect(path).execute("PRAGMA page_size").fetchone()[0] > 0


def test_with_no_reserve_to_free_the_wait_for_space_is_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk already full at start leaves no reserve: the worker then waits for space
    seconds, not the five minutes a follower would take for a hang."""
    from kiln_lab.core import disk_reserve
    from kiln_lab.core.store_open import store_disk_full

    path = tmp_path / "runs.sqlite"
    store = RunStore(path)
    run_id = store.create_run({"model": "tiny-ner-bert"})
    reserve = disk_reserve.DiskReserve(tmp_path)  # never entered: nothing was reserved
    assert not reserve.held
    monkeypatch.setattr(disk_reserve, "NO_RESERVE_WAIT_S", 0.05)
    store.finish_run = lambda *a, **k: (_ for _ in ()).throw(store_disk_full(path))  # type: ignore[method-assign]
    started = time.monotonic()
    assert not disk_reserve.record_disk_full(store, run_id, store_disk_full(path), reserve)
    assert time.monotonic() - started < 10
    with disk_reserve.DiskReserve(tmp_path) as held:
        assert held.held


def test_a_wal_deleted_under_a_writer_and_a_reader_loses_nothing(tmp_path: Path) -> None:
    """``rm runs.sqlite-wal`` while a worker writes and a client reads: the writer
    checkpoints what it wrote into the main file and reopens, the reader follows, and a
    store opened afterwards holds every event."""
    path = tmp_path / "runs.sqlite"
    writer, reader = RunStore(path), RunStore(path)
    run_id = writer.create_run({"model": "tiny-ner-bert"})
    writer.append_many(run_id, [LogLine(None, "info", f"before {i}") for i in range(50)])
    assert len(reader.events(run_id)) == 50
    Path(f"{path}-wal").unlink()
    writer.append_many(run_id, [LogLine(None, "info", f"after {i}") for i in range(50)])
    assert len(reader.events(run_id)) == 100
    late = RunStore(path)  # opened after the deletion: sees the same store
    assert len(late.events(run_id)) == 100
    writer.set_status(run_id, "succeeded")
    assert reader.run(run_id).status == "succeeded"
    for store in (writer, reader, late):
        store.close()
    again = RunStore(path)
    assert len(again.events(run_id)) == 100 and again.run(run_id).status == "succeeded"
    assert again._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    again.close()


def _unmount(where: Path) -> None:
    """The worker outlives the client by a moment; wait for it to let go of the mount."""
    for _ in range(100):
        if subprocess.run(["umount", str(where)], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_real_full_disk_fails_the_run_in_one_line_and_leaves_nothing_half_written(
    tmp_path: Path,
) -> None:
    """KILN_HOME on a 6 MB tmpfs, smaller than the run's data cache and graphs: the run
    is recorded failed with the cause, `--json` prints one object, history stays
    readable, and no partial file is left under or beside a final name."""
    home = tmp_path / "small"
    _try_mount_tmpfs(home, "6m")
    try:
        proc = _kiln(home, "run", "--model", "zh-ner-tiny", "--limit", "20", "--json")
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        out = json.loads(proc.stdout)
        assert out["status"] == "failed" and out["error"]["kind"] == "DiskFull"
        assert str(home) in out["error"]["message"] and "free there now" in out["error"]["message"]
        listed = _kiln(home, "runs", "--json")
        assert listed.returncode == 0, listed.stderr
        (record,) = json.loads(listed.stdout)
        assert record["status"] == "failed" and record["error"]["kind"] == "DiskFull"
        # Entries are published whole (a temporary directory renamed into place): only
        # complete ones, each with its meta.json, and no hidden temporaries anywhere.
        for entry in (home / "cache" / "artifacts").iterdir():
            assert (entry / "meta.json").is_file(), f"an incomplete cache entry: {entry}"
            names = {p.name for p in entry.iterdir()}
            assert not {n for n in names if "inferred" in n or n.startswith(".")}, names
        hidden = [p for p in home.rglob(".*") if not p.name.startswith(".reserve")]
        assert not [p for p in hidden if p.is_file() or p.is_dir()], hidden
    finally:
        _unmount(home)


def test_opening_a_store_never_opens_its_file_outside_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing any descriptor of the store drops every POSIX lock the process holds on
    it, SQLite's included: a second RunStore in a process (the app, two in-process
    commands) once corrupted the store that way."""
    path = tmp_path / "runs.sqlite"
    first = RunStore(path)
    first.create_run({"model": "tiny-ner-bert"})
    opened: list[str] = []
    real_open = os.open

    def spy(file: object, *args: object, **kwargs: object) -> int:
        opened.append(os.fspath(file))  # type: ignore[arg-type]
        return real_open(file, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", spy)
    second = RunStore(path)
    monkeypatch.undo()
    assert str(path) not in opened
    assert len(second.runs()) == 1
    first.close()
    second.close()


@pytest.mark.slow
def test_two_runs_from_one_process_leave_the_store_whole(
    tiny_assets: Path, kiln_home: Path
) -> None:
    from kiln_lab.tui import cli

    for _ in range(2):
        assert cli.main(["run", "--model", "tiny-ner-bert", "--limit", "4", "--json"]) == 0
    with sqlite3.connect(kiln_home / "runs.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
