"""Every vendor file layout round-trips, and its outputs come back by name or not at all.

Inputs are read back the way each tool reads them (VastAI: data-list lines, arrays in
archive order; ais_bench: comma-split directories, natural-sorted, zipped by position;
Polygraphy: its own StreamingDataLoader). Outputs are written the way each tool writes
them; for Polygraphy by running the real ``polygraphy run --onnxrt`` over a tiny ONNX
model and checking its outputs against onnxruntime run directly. With more than ten
items, a lexical and a natural sort of unpadded names would disagree, so order is tested.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from kiln_lab.core.errors import ConfigError, DataError, ToolOutputError
from kiln_lab.core.layouts import LAYOUTS, get_layout

COUNT = 12
ROWS, SEQ, LABELS = 2, 5, 3
NAMES = ("input_ids", "attention_mask")
HAS_POLYGRAPHY = importlib.util.find_spec("polygraphy") is not None
POLYGRAPHY_MAIN = "import sys; from polygraphy.tools import main; sys.exit(main())"
needs_polygraphy = pytest.mark.skipif(
    not HAS_POLYGRAPHY, reason="polygraphy is not installed (pip install polygraphy)"
)


def make_items(rows: int, count: int = COUNT) -> list[dict[str, np.ndarray]]:
    """Items whose arrays say which item they are (ids start at 10 * index)."""
    rng = np.random.default_rng(0)
    items = []
    for index in range(count):
        ids = 10 * index + np.arange(rows * SEQ, dtype=np.int64).reshape(rows, SEQ) % 10
        mask = (rng.random((rows, SEQ)) > 0.3).astype(np.int64)
        items.append({"input_ids": ids, "attention_mask": mask})
    return items


def natural_sort(paths: list[str]) -> list[str]:
    """ais_bench's own order (ais_bench/infer/utils.py natural_sort)."""

    def key(text: str) -> list[int | str]:
        return [int(c) if c.isdigit() else c.lower() for c in re.split("([0-9]+)", text)]

    return sorted(paths, key=key)


def logits(index: int, shape: tuple[int, ...]) -> np.ndarray:
    return index + np.arange(np.prod(shape), dtype=np.float32).reshape(shape) / 100


# -- the registry ----------------------------------------------------------------------


def test_registry_names_every_layout_and_refuses_others() -> None:
    assert set(LAYOUTS) == {"npz-list", "ais-bench", "polygraphy-json"}
    assert all(get_layout(name).name == name for name in LAYOUTS)
    with pytest.raises(ConfigError) as caught:
        get_layout("npz")
    assert "ais-bench, npz-list, polygraphy-json" in str(caught.value)


def test_importing_layouts_leaves_polygraphy_unimported() -> None:
    code = "import sys, kiln_lab.core.layouts; print('polygraphy' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr


# -- inputs, read back as each tool reads them -----------------------------------------


@pytest.mark.parametrize("keys", ["indexed", "names"])
def test_npz_list_round_trip_as_vsx_reads_it(tmp_path: Path, keys: str) -> None:
    items = make_items(1)
    data_list = get_layout("npz-list").write_inputs(
        tmp_path / "in", items, NAMES, dtype="int32", keys=keys
    )
    assert Path(data_list).name == "npz_datalist.txt"
    lines = Path(data_list).read_text().splitlines()
    assert len(lines) == COUNT
    array_names = ["input_0", "input_1"] if keys == "indexed" else list(NAMES)
    for item, line in zip(items, lines, strict=True):
        with np.load(line.strip()) as archive:  # vsx_ner.py: inputs.items(), in order
            assert list(archive.keys()) == array_names
            for stored, name in zip(archive.values(), NAMES, strict=True):
                assert stored.dtype == np.int32 and stored.shape == (SEQ,)
                np.testing.assert_array_equal(stored, item[name][0])
    manifest = json.loads((tmp_path / "in" / "manifest.json").read_text())
    assert manifest["count"] == COUNT and manifest["dtype"] == "int32"
    assert manifest["files"][11] == ["samples/000011.npz"]
    assert manifest["input_names"] == list(NAMES)


@pytest.mark.parametrize("file_format", ["npy", "bin"])
def test_ais_bench_round_trip_as_ais_bench_reads_it(tmp_path: Path, file_format: str) -> None:
    items = make_items(ROWS)
    tool_input = get_layout("ais-bench").write_inputs(
        tmp_path / "in", items, NAMES, file_format=file_format
    )
    directories = tool_input.split(",")
    assert [Path(d).name for d in directories] == list(NAMES)
    listed = [natural_sort([str(p) for p in Path(d).iterdir()]) for d in directories]
    assert [sorted(files) for files in listed] == listed  # lexical agrees: zero-padded
    batches = list(zip(*listed, strict=True))
    assert len(batches) == COUNT
    for item, files in zip(items, batches, strict=True):
        assert len({Path(f).name for f in files}) == 1  # same stem: one output name
        for name, file in zip(NAMES, files, strict=True):
            if file_format == "npy":
                stored = np.load(file)
            else:
                stored = np.fromfile(file, dtype=np.int64).reshape(ROWS, SEQ)
            assert stored.dtype == np.int64
            np.testing.assert_array_equal(stored, item[name])


@needs_polygraphy
def test_polygraphy_round_trip_as_its_data_loader_reads_it(tmp_path: Path) -> None:
    from polygraphy.comparator import StreamingDataLoader

    items = make_items(ROWS)
    tool_input = get_layout("polygraphy-json").write_inputs(tmp_path / "in", items, NAMES)
    feeds = list(StreamingDataLoader(tool_input))
    assert len(feeds) == COUNT
    for item, feed in zip(items, feeds, strict=True):
        assert list(feed) == list(NAMES)
        for name in NAMES:
            np.testing.assert_array_equal(feed[name], item[name])


def test_inputs_the_layouts_refuse(tmp_path: Path) -> None:
    npz, ais, poly = (get_layout(n) for n in ("npz-list", "ais-bench", "polygraphy-json"))
    with pytest.raises(DataError, match=r"not of shape \(1, seq_len\)"):
        npz.write_inputs(tmp_path / "a", make_items(ROWS), NAMES)
    ragged = make_items(ROWS, 2) + make_items(ROWS + 1, 1)
    with pytest.raises(DataError, match="item 2 has shape"):
        ais.write_inputs(tmp_path / "b", ragged, NAMES)
    with pytest.raises(DataError, match="no array for model input 'token_type_ids'"):
        ais.write_inputs(tmp_path / "c", make_items(ROWS), (*NAMES, "token_type_ids"))
    with pytest.raises(DataError, match="int32 range"):
        npz.write_inputs(tmp_path / "d", [{"x": np.array([[2**40]])}], ["x"], dtype="int32")
    with pytest.raises(ConfigError, match="cannot name arrays 'indexed'"):
        poly.write_inputs(tmp_path / "e", make_items(ROWS), NAMES, keys="indexed")
    with pytest.raises(ConfigError, match="no file format 'txt'"):
        ais.write_inputs(tmp_path / "f", make_items(ROWS), NAMES, file_format="txt")
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "leftover.npy").write_bytes(b"")
    with pytest.raises(DataError, match="not a new or empty directory"):
        ais.write_inputs(tmp_path / "g", make_items(ROWS), NAMES)


# -- outputs, written as each tool writes them -----------------------------------------


def vamp_outputs(directory: Path, count: int = COUNT) -> None:
    """vsx_ner.py / run_torchscript.py: np.savez(save_dir/str(i).zfill(6), output_0=...)."""
    directory.mkdir(parents=True, exist_ok=True)
    for i in reversed(range(count)):
        np.savez(directory / str(i).zfill(6), output_0=logits(i, (SEQ, LABELS)))


def ais_bench_outputs(directory: Path, file_format: str = "npy", count: int = COUNT) -> None:
    """save_tensors_to_file: {stem of the first input}_{k}.{outfmt}, np.save or tofile."""
    folder = directory / "outputs"
    folder.mkdir(parents=True, exist_ok=True)
    for i in reversed(range(count)):
        for k, shape in enumerate([(ROWS, SEQ, LABELS), (ROWS, 4)]):
            path = folder / f"{i:06d}_{k}.{file_format}"
            array = logits(i, shape) + k
            np.save(path, array) if file_format == "npy" else array.tofile(path)


def test_npz_list_outputs_come_back_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = get_layout("npz-list")
    vamp_outputs(tmp_path / "out")
    listing = os.scandir

    def shuffled(path: object) -> list[os.DirEntry[str]]:
        entries = list(listing(path))  # type: ignore[call-overload]
        random.Random(1).shuffle(entries)
        return entries

    monkeypatch.setattr(os, "scandir", shuffled)  # any listing order gives the same result
    outputs = layout.read_outputs(tmp_path / "out", COUNT, shape=(1, SEQ, LABELS))
    for i, output in enumerate(outputs):
        np.testing.assert_array_equal(output, logits(i, (1, SEQ, LABELS)))
    assert layout.ready(tmp_path / "out", COUNT + 2) == list(range(COUNT))


@pytest.mark.parametrize("file_format", ["npy", "bin"])
def test_ais_bench_outputs_come_back_by_name(tmp_path: Path, file_format: str) -> None:
    layout = get_layout("ais-bench")
    ais_bench_outputs(tmp_path, file_format)
    shape = (ROWS, SEQ, LABELS)
    outputs = layout.read_outputs(tmp_path, COUNT, file_format=file_format, shape=shape)
    second = layout.read_outputs(tmp_path, COUNT, key="1", file_format=file_format, shape=(8,))
    for i in range(COUNT):
        np.testing.assert_array_equal(outputs[i], logits(i, shape))
        np.testing.assert_array_equal(second[i], (logits(i, (ROWS, 4)) + 1).reshape(-1))
    ready = layout.ready(tmp_path, COUNT, file_format=file_format, shape=shape)
    assert ready == list(range(COUNT))


# -- the real polygraphy program -------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer linear token classifier with int64 input_ids and attention_mask."""
    torch = pytest.importorskip("torch")

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(200, 8)
            self.hidden = torch.nn.Linear(8, 8)
            self.out = torch.nn.Linear(8, LABELS)

        def forward(self, input_ids, attention_mask):  # type: ignore[no-untyped-def]
            x = self.embed(input_ids) * attention_mask.unsqueeze(-1).to(torch.float32)
            return self.out(torch.relu(self.hidden(x)))

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    example = torch.zeros((ROWS, SEQ), dtype=torch.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter
        torch.onnx.export(
            Tiny().eval(),
            (example, example),
            str(path),
            input_names=list(NAMES),
            output_names=["logits"],
            dynamic_axes={name: {0: "batch", 1: "seq"} for name in NAMES},
            dynamo=False,
        )
    return path


@pytest.fixture(scope="module")
def polygraphy_run(
    tiny_onnx: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[dict[str, np.ndarray]]]:
    """``polygraphy run --onnxrt`` over written inputs; (its output directory, items)."""
    if not HAS_POLYGRAPHY:
        pytest.skip("polygraphy is not installed (pip install polygraphy)")
    layout = get_layout("polygraphy-json")
    work = tmp_path_factory.mktemp("polygraphy")
    items = make_items(ROWS)
    tool_input = layout.write_inputs(work / "inputs", items, NAMES)
    script = Path(sys.executable).with_name("polygraphy")  # its console script
    program = [str(script)] if script.exists() else [sys.executable, "-c", POLYGRAPHY_MAIN]
    command = [*program, "run", str(tiny_onnx), "--onnxrt", "--load-inputs", tool_input]
    command += ["--save-outputs", layout.output_path(work / "outputs")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return work / "outputs", items


@needs_polygraphy
def test_polygraphy_outputs_match_onnxruntime(polygraphy_run, tiny_onnx: Path) -> None:
    import onnxruntime

    out, items = polygraphy_run
    layout = get_layout("polygraphy-json")
    outputs = layout.read_outputs(out, COUNT, key="logits", shape=(ROWS, SEQ, LABELS))
    session = onnxruntime.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])
    for item, output in zip(items, outputs, strict=True):
        (expected,) = session.run(["logits"], dict(item))
        np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-6)
    first = layout.read_outputs(out, COUNT)
    np.testing.assert_array_equal(np.stack(first), np.stack(outputs))
    assert layout.ready(out, COUNT) == list(range(COUNT))


# -- damaged outputs: a clear error naming the file ------------------------------------


SETUPS = {
    "npz-list": ("000005.npz", "000012.npz", "output_7"),
    "ais-bench": ("000005_0.npy", "000012_0.npy", "x"),
    "polygraphy-json": ("0000000005.json", "0000000012.json", "probabilities"),
}


@pytest.fixture(params=list(SETUPS))
def damaged(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path, Path]:
    """(layout name, the directory read_outputs takes, the folder the files are in)."""
    name, directory = request.param, tmp_path / "out"
    if name == "polygraphy-json":
        shutil.copytree(request.getfixturevalue("polygraphy_run")[0], directory)
    else:
        (vamp_outputs if name == "npz-list" else ais_bench_outputs)(directory)
    return name, directory, get_layout(name).output_folder(directory)


def _raises_naming(name: str, directory: Path, file: str, **kwargs: object) -> str:
    with pytest.raises(ToolOutputError) as caught:
        get_layout(name).read_outputs(directory, COUNT, **kwargs)  # type: ignore[arg-type]
    assert caught.value.path is not None and Path(caught.value.path).name == file
    assert file in caught.value.message and caught.value.hint
    return caught.value.message


def test_a_missing_output_is_named(damaged: tuple[str, Path, Path]) -> None:
    name, directory, folder = damaged
    target = SETUPS[name][0]
    (folder / target).unlink()
    assert "1 of 12 output files missing" in _raises_naming(name, directory, target)
    assert 5 not in get_layout(name).ready(directory, COUNT)


@pytest.mark.parametrize("stray", ["next", "notes.txt"])
def test_an_extra_output_is_named(damaged: tuple[str, Path, Path], stray: str) -> None:
    name, directory, folder = damaged
    extra = SETUPS[name][1] if stray == "next" else stray
    shutil.copy(folder / SETUPS[name][0], folder / extra)
    assert "unexpected files" in _raises_naming(name, directory, extra)


def test_a_truncated_output_is_named_and_never_ready(damaged: tuple[str, Path, Path]) -> None:
    name, directory, folder = damaged
    target = folder / SETUPS[name][0]
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    assert "could not be read" in _raises_naming(name, directory, target.name)
    assert get_layout(name).ready(directory, COUNT) == [i for i in range(COUNT) if i != 5]


def test_a_wrong_key_is_named(damaged: tuple[str, Path, Path]) -> None:
    name, directory, _ = damaged
    key = SETUPS[name][2]
    if name == "ais-bench":  # outputs are named by index there: a key is a file name
        with pytest.raises(ConfigError, match="not an output index"):
            get_layout(name).read_outputs(directory, COUNT, key=key)
        _raises_naming(name, directory, "000000_2.npy", key="2")
        return
    assert repr(key) in _raises_naming(name, directory, SETUPS[name][0].replace("5", "0"), key=key)


def test_a_wrong_shape_is_named(damaged: tuple[str, Path, Path]) -> None:
    name, directory, _ = damaged
    first = SETUPS[name][0].replace("5", "0")
    assert "expected shape" in _raises_naming(name, directory, first, shape=(ROWS, SEQ, 7))


def test_a_wrong_bin_size_is_named(tmp_path: Path) -> None:
    ais_bench_outputs(tmp_path, "bin")
    target = tmp_path / "outputs" / "000007_0.bin"
    target.write_bytes(target.read_bytes()[:-4])
    shape = (ROWS, SEQ, LABELS)
    message = _raises_naming("ais-bench", tmp_path, target.name, file_format="bin", shape=shape)
    assert "expected 120 bytes" in message
    layout = get_layout("ais-bench")
    assert 7 not in layout.ready(tmp_path, COUNT, file_format="bin", shape=shape)


def test_no_output_directory_is_named(tmp_path: Path) -> None:
    for name in LAYOUTS:
        with pytest.raises(ToolOutputError, match="wrote no output directory"):
            get_layout(name).read_outputs(tmp_path / "nothing", COUNT)
        assert get_layout(name).ready(tmp_path / "nothing", COUNT) == []
