"""Faults during a run: a damaged cache, a full disk, too little memory, bad data.

Each case drives the real pipeline (``run_pipeline``, or ``execute_run`` where the
worker's log lines matter) on the tiny models, injects the fault where it happens in
life (a write that raises ``ENOSPC``, junk over a cached graph, an allocation that
fails), and checks what the operator gets: a ``KilnError`` with a way out, and no
half-written artifact that a later run could pick up.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from kiln_lab.core.errors import ConfigError, DataError, DiskFull, KilnError, RuntimeFailure
from kiln_lab.core.events import LogLine, StageFinished
from kiln_lab.core.pipeline import run_pipeline
from kiln_lab.core.runconfig import RunConfig

DATA = Path(__file__).resolve().parent.parent / "data" / "datasets"
SAMPLE_BIO = DATA / "peoples_daily_sample.bio"


def _config(**options: object) -> RunConfig:
    """tiny-ner-bert on a small BIO file: no built-in dataset to derive, seconds a run."""
    defaults: dict[str, object] = {
        "model": "tiny-ner-bert",
        "dataset_file": str(SAMPLE_BIO),
        "dataset_format": "bio",
        "batch_size": 4,
    }
    return RunConfig(**(defaults | options))  # type: ignore[arg-type]


def _entries(home: Path) -> list[Path]:
    """Everything in the artifact cache: entries and any leftover temporary directory."""
    root = home / "cache" / "artifacts"
    return sorted(root.iterdir()) if root.exists() else []


def _summary(events: list, stage: str) -> dict:
    return next(e.summary for e in events if isinstance(e, StageFinished) and e.stage_name == stage)


def _no_space(*_args: object, **_kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def _writes_half_then_fills(path_arg: int) -> Callable[..., None]:
    """A stand-in writer that leaves a partial file, then fails as a full disk does."""

    def write(*args: object, **kwargs: object) -> None:
        Path(str(args[path_arg])).write_bytes(b"\x08\x07partial protobuf")
        _no_space()

    return write


def _assert_disk_full(err: KilnError, home: Path) -> None:
    assert isinstance(err, DiskFull), err
    cache = home / "cache" / "artifacts"
    assert "disk full" in err.message and str(cache) in err.message and "GB free" in err.message
    assert err.path == str(cache)
    assert "kiln cache clear" in err.hint and "KILN_HOME" in err.hint


# --- the artifact cache ---------------------------------------------------------------------


def test_corrupt_cached_onnx_is_detected_and_rebuilt(
    tiny_assets: Path, kiln_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Junk over every cached model.onnx (export and fused graph): the next run notices
    the sha256 no longer matches, says so, rebuilds, and succeeds."""
    run_pipeline(_config(limit=8), "first", lambda e: None)
    damaged = [entry / "model.onnx" for entry in _entries(kiln_home)]
    assert len(damaged) == 2  # the export and the fused graph
    for model in damaged:
        model.write_bytes(b"this is not an ONNX graph")
    events: list = []
    with caplog.at_level(logging.WARNING, logger="kiln_lab.core.export"):
        result = run_pipeline(_config(limit=8), "second", events.append)
    assert result["parity"]["status"] == "pass"
    assert _summary(events, "export")["cached"] is False
    assert _summary(events, "optimize")["cached"] is False
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("is damaged" in w and "building it again" in w for w in warnings) == 2
    for model in damaged:
        meta = json.loads((model.parent / "meta.json").read_text())
        assert model.read_bytes() != b"this is not an ONNX graph" and meta["sha256"]


def test_damaged_entry_without_a_recorded_hash_says_how_to_recover(
    tiny_assets: Path, kiln_home: Path
) -> None:
    """An entry from before hashes were recorded cannot be checked on reuse: the session
    fails to load it, and the error says `kiln cache clear`, which does recover."""
    from kiln_lab.core import cache

    run_pipeline(_config(limit=8), "first", lambda e: None)
    fused = next(e for e in _entries(kiln_home) if "fused" in (e / "meta.json").read_text())
    meta = json.loads((fused / "meta.json").read_text())
    del meta["sha256"]
    (fused / "meta.json").write_text(json.dumps(meta))
    (fused / "model.onnx").write_bytes(b"junk")
    with pytest.raises(RuntimeFailure) as info:
        run_pipeline(_config(limit=8), "second", lambda e: None)
    assert info.value.path == str(fused / "model.onnx")
    assert "kiln cache clear" in info.value.hint
    removed, _ = cache.clear()
    assert removed == 2
    run_pipeline(_config(limit=8), "third", lambda e: None)


def test_leftovers_of_a_killed_worker_are_never_used(tiny_assets: Path, kiln_home: Path) -> None:
    """SIGKILL mid-build leaves a temporary directory (or, from older versions, an entry
    without meta.json): neither is reused, the entry is rebuilt, `kiln cache clear`
    removes the rest."""
    from kiln_lab.core import cache

    run_pipeline(_config(limit=8), "first", lambda e: None)
    export = next(e for e in _entries(kiln_home) if "opset" in (e / "meta.json").read_text())
    (export / "meta.json").unlink()
    dead = kiln_home / "cache" / "artifacts" / ".export-killed"
    dead.mkdir()
    (dead / "model.onnx").write_bytes(b"half an export")
    events: list = []
    run_pipeline(_config(limit=8), "second", events.append)
    assert _summary(events, "export")["cached"] is False
    assert json.loads((export / "meta.json").read_text())["sha256"]
    assert {e.kind for e in cache.entries() if e.path == dead} == {"temporary"}
    cache.clear()
    assert _entries(kiln_home) == []


@pytest.mark.parametrize("where", ["torch.onnx.export", "meta.json"])
def test_disk_full_while_exporting_leaves_nothing_behind(
    tiny_assets: Path, kiln_home: Path, where: str
) -> None:
    import torch

    import kiln_lab.core.export

    def half_meta(workdir: Path, meta: dict, *args: object, **kwargs: object) -> dict:
        (workdir / "meta.json").write_text('{"key": ')
        _no_space()
        return meta

    # A context of its own: undoing the fixture's monkeypatch would also undo KILN_HOME.
    with pytest.MonkeyPatch.context() as patch:
        if where == "torch.onnx.export":
            patch.setattr(torch.onnx, "export", _writes_half_then_fills(2))
        else:
            patch.setattr(kiln_lab.core.export, "write_meta", half_meta)
        with pytest.raises(DiskFull) as info:
            run_pipeline(_config(limit=8), "full", lambda e: None)
    _assert_disk_full(info.value, kiln_home)
    assert _entries(kiln_home) == [], "a partial entry or temporary directory was left"
    events: list = []
    run_pipeline(_config(limit=8), "after", events.append)
    assert _summary(events, "export")["cached"] is False


def _exported(kiln_home: Path, tiny_assets: Path) -> Path:
    from kiln_lab.core.export import export_onnx
    from kiln_lab.core.models import get_card, load_model

    loaded = load_model(get_card("tiny-ner-bert"))
    path, _ = export_onnx(
        loaded.model, input_names=loaded.family.input_names, weights_sha256="faults"
    )
    return path


def _patch_fusion(patch: pytest.MonkeyPatch, writer: Callable[..., None]) -> None:
    # ORT's transformers package is importable under two names; patch the instance that
    # optimize_model returns rather than guess which module's class it is.
    from onnxruntime.transformers import optimizer

    real = optimizer.optimize_model

    def optimize_model(*args: object, **kwargs: object) -> object:
        model = real(*args, **kwargs)
        model.save_model_to_file = lambda path, *a, **k: writer(path)  # type: ignore[method-assign]
        return model

    patch.setattr(optimizer, "optimize_model", optimize_model)


WRITERS: dict[str, Callable[[pytest.MonkeyPatch, Callable[..., None]], None]] = {
    "fusion": _patch_fusion,
    "dynamic int8": lambda patch, writer: patch.setattr(
        "onnxruntime.quantization.quantize_dynamic", lambda src, out, **k: writer(out)
    ),
    "fp16": lambda patch, writer: patch.setattr("onnx.save", lambda model, out, **k: writer(out)),
}


def _build(kind: str, source: Path) -> object:
    from kiln_lab.core.optimize import fuse_transformer
    from kiln_lab.core.quantize import DynamicInt8, quantize, to_float16

    if kind == "fusion":
        return fuse_transformer(source, num_heads=2, hidden_size=32)
    if kind == "dynamic int8":
        return quantize(source, DynamicInt8())
    return to_float16(source)


@pytest.mark.parametrize("kind", sorted(WRITERS))
@pytest.mark.parametrize("failure", ["ENOSPC", "message"])
def test_disk_full_in_every_artifact_writer(
    tiny_assets: Path, kiln_home: Path, kind: str, failure: str
) -> None:
    """Fused graph, int8 and fp16 writers: a clear error and only the source entry left.
    ``message``: tools that report a full disk only in their text (protobuf, ORT)."""
    source = _exported(kiln_home, tiny_assets)
    before = _entries(kiln_home)
    writer = _writes_half_then_fills(0)
    if failure == "message":

        def writer(path: object) -> None:
            Path(str(path)).write_bytes(b"partial")
            raise RuntimeError("SerializeToOstream failed: No space left on device")

    with pytest.MonkeyPatch.context() as patch:
        WRITERS[kind](patch, writer)
        with pytest.raises(DiskFull) as info:
            _build(kind, source)
    _assert_disk_full(info.value, kiln_home)
    assert _entries(kiln_home) == before
    _build(kind, source)
    assert len(_entries(kiln_home)) == len(before) + 1


def test_no_room_even_for_a_work_directory(
    tiny_assets: Path, kiln_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "mkdtemp", _no_space)
    with pytest.raises(DiskFull) as info:
        run_pipeline(_config(limit=8), "full", lambda e: None)
    _assert_disk_full(info.value, kiln_home)


def test_report_on_a_full_disk_keeps_the_old_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kiln_lab.core.report import write_report

    out = tmp_path / "reports"
    first = write_report([], [], "md", out)
    original = first.read_text()
    real_write = Path.write_text

    def full(self: Path, *args: object, **kwargs: object) -> int:
        real_write(self, "partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(ConfigError) as info:
        write_report([], [], "md", out)
    assert "disk is full" in info.value.message and info.value.path == str(out)
    assert first.read_text() == original
    assert sorted(p.name for p in out.iterdir()) == ["report.md"]


def test_disk_full_while_writing_the_run_report(
    tiny_assets: Path, kiln_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = Path.write_text

    def full(self: Path, *args: object, **kwargs: object) -> int:
        if "report.json" in self.name:
            real_write(self, '{"partial": ')
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(KilnError) as info:
        run_pipeline(_config(limit=8, profile="cpu-torch"), "report-full", lambda e: None)
    assert "disk full" in info.value.message
    assert not list((kiln_home / "artifacts").rglob("*report.json*"))


def test_disk_full_while_caching_a_dataset_only_warns(
    kiln_home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The derived-dataset cache is optional: a full disk costs a re-derivation next
    time, never the run, and leaves no temporary file."""
    from kiln_lab.core.data import cache as dataset_cache
    from kiln_lab.core.data import read_file

    dataset = read_file(SAMPLE_BIO, "bio")

    def full(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dataset_cache.json, "dump", full)
    with caplog.at_level(logging.WARNING, logger="kiln_lab.core.data.cache"):
        target = dataset_cache.save(dataset, "k" * 64)
    assert not target.exists() and not list(target.parent.glob(f"{target.name}*"))
    assert any("could not cache" in r.getMessage() for r in caplog.records)


def test_two_runs_building_the_same_entry_at_once(kiln_home: Path) -> None:
    """The second to finish finds the first's complete entry and keeps it."""
    from kiln_lab.core.export import entry_dir, new_workdir, publish_entry, reuse_entry, write_meta

    target = entry_dir("same-key")
    built = []
    for content in (b"first", b"second"):
        work = new_workdir(".export-", "a test entry")
        (work / "model.onnx").write_bytes(content)
        write_meta(work, {"key": "same-key"})
        publish_entry(work, target)
        built.append(work)
    assert (target / "model.onnx").read_bytes() == b"first"
    assert reuse_entry(target) is not None
    assert not built[0].exists() and built[1].exists()  # the caller removes its workdir


def test_a_small_file_is_written_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``write_atomically`` (offered for report.json and the guard's overrides)."""
    from kiln_lab.core.export import write_atomically

    path = tmp_path / "report.json"
    write_atomically(path, '{"old": true}')
    real_write = Path.write_text

    def full(self: Path, *args: object, **kwargs: object) -> int:
        real_write(self, '{"half')
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(DiskFull) as info:
        write_atomically(path, '{"new": true}')
    assert "disk full" in info.value.message and info.value.path == str(tmp_path)
    monkeypatch.setattr(Path, "write_text", real_write)
    assert path.read_text() == '{"old": true}' and [p.name for p in tmp_path.iterdir()] == [
        "report.json"
    ]


# --- memory ---------------------------------------------------------------------------------

ORT_ALLOCATION_FAILURE = (
    "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while running "
    "MatMul node. Failed to allocate memory for requested buffer of size 4294967296"
)


TORCH_ALLOCATION_FAILURE = (
    "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: you "
    "tried to allocate 4294967296 bytes."
)


def _out_of_memory(kind: str) -> BaseException:
    if kind == "MemoryError":
        return MemoryError()
    if kind == "torch allocator":
        return RuntimeError(TORCH_ALLOCATION_FAILURE)
    from onnxruntime.capi.onnxruntime_pybind11_state import RuntimeException

    return RuntimeException(ORT_ALLOCATION_FAILURE)


@pytest.mark.parametrize(
    ("profile", "kind"),
    [
        ("cpu-onnxruntime", "MemoryError"),
        ("cpu-onnxruntime", "ORT allocation failure"),
        ("cpu-torch", "torch allocator"),
    ],
)
def test_batch_too_large_for_memory_suggests_a_smaller_batch(
    tiny_assets: Path, kiln_home: Path, monkeypatch: pytest.MonkeyPatch, profile: str, kind: str
) -> None:
    """The allocation fails where it does in life: inside the ONNX Runtime session, or in
    the PyTorch model's forward pass."""
    import onnxruntime
    import transformers

    def out_of_memory(*_args: object, **_kwargs: object) -> None:
        raise _out_of_memory(kind)

    if profile == "cpu-torch":
        monkeypatch.setattr(transformers.BertForTokenClassification, "forward", out_of_memory)
    else:
        monkeypatch.setattr(onnxruntime.InferenceSession, "run", out_of_memory)
    with pytest.raises(KilnError) as info:
        run_pipeline(_config(limit=8, batch_size=8, profile=profile), "oom", lambda e: None)
    # The batch that failed, as it was: up to 8 rows (bucketing cuts where lengths jump).
    shape = re.search(r"out of memory running a batch of (\d+) x (\d+) tokens", info.value.message)
    assert shape and 1 <= int(shape[1]) <= 8
    assert f"--batch-size {max(1, int(shape[1]) // 2)}" in (info.value.hint or "")


# --- data that does not fit --------------------------------------------------------------


def test_sentence_longer_than_seq_len_is_truncated_and_said(
    tiny_assets: Path, kiln_home: Path, tmp_path: Path
) -> None:
    """A 300-character sentence at --seq-len 64: the run finishes, the result counts the
    truncated example and the log says what it means for the score."""
    from kiln_lab.core.store import RunStore
    from kiln_lab.core.worker import execute_run

    long = tmp_path / "long.bio"
    chars = "中华人民共和国北京市" * 30
    long.write_text(
        "".join(f"{c} O\n" for c in chars) + "\n" + "张 B-PER\n三 I-PER\n\n", encoding="utf-8"
    )
    store = RunStore()
    config = _config(dataset_file=str(long), seq_len=64, profile="cpu-torch")
    run_id = store.create_run(config.to_dict())
    assert execute_run(store, run_id) == 0
    record = store.run(run_id)
    assert record.result["truncated"] == 1 and record.result["seq_len"] == 64
    lines = [e.event for e in store.events(run_id) if isinstance(e.event, LogLine)]
    warned = [line for line in lines if line.level == "warning" and "truncated" in line.message]
    assert warned and warned[0].stage_name == "evaluate"
    assert "1 of 2 examples" in warned[0].message


def test_seq_len_beyond_the_model_is_refused_before_the_run(
    tiny_assets: Path, kiln_home: Path
) -> None:
    from kiln_lab.core.stages.resolve import preflight

    with pytest.raises(ConfigError) as info:
        preflight(_config(seq_len=4096))
    assert "exceeds the model's 128" in info.value.message and "--seq-len 128" in info.value.hint


def test_empty_dataset_file(tiny_assets: Path, kiln_home: Path, tmp_path: Path) -> None:
    from kiln_lab.core.stages.resolve import preflight

    empty = tmp_path / "empty.bio"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        preflight(_config(dataset_file=str(empty)))
    assert info.value.path == str(empty) and "empty dataset" in info.value.message


def test_empty_dataset_file_on_the_command_line(
    tiny_assets: Path, kiln_home: Path, tmp_path: Path
) -> None:
    """One line on stderr, no traceback, non-zero exit, and no run recorded."""
    empty = tmp_path / "empty.tsv"
    empty.write_text("", encoding="utf-8")
    env = {**os.environ, "KILN_HOME": str(kiln_home), "NO_COLOR": "1", "COLUMNS": "200"}
    args = ["run", "--model", "tiny-senti-roberta", "--dataset-file", str(empty), "--format"]
    proc = subprocess.run(
        [sys.executable, "-m", "kiln_lab.tui.cli", *args, "tsv"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "empty.tsv" in lines[0] and "empty dataset" in lines[0]
    assert not (kiln_home / "runs.sqlite").exists() or "[]" in subprocess.run(
        [sys.executable, "-m", "kiln_lab.tui.cli", "runs", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    ).stdout.replace(" ", "")
