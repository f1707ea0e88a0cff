"""The MagicMind file-in, file-out runner, without MagicMind: a fake model is passed in.

What runs only on an MLU (MagicMind itself) is replaced by small fakes; what Kiln relies
on is checked for real: the options, the data list's order and paths, the output names
``{index:06d}.npz`` with ``output_0``, the input order, and the one-line errors.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from kiln_lab.tui.commands import magicmind_infer as runner


def write_samples(root: Path, count: int, *, keys: str = "indexed") -> Path:
    """``count`` samples (ids = the sample's number) and a data list naming them."""
    samples = root / "samples"
    samples.mkdir(parents=True)
    names = ("input_ids", "attention_mask", "token_type_ids")
    lines = []
    for i in range(count):
        ids = np.full((1, 8), i, dtype=np.int64)
        arrays = {"input_ids": ids, "attention_mask": ids * 0 + 1, "token_type_ids": ids * 0}
        if keys == "indexed":
            arrays = {f"input_{n}": arrays[name] for n, name in enumerate(names)}
        np.savez(samples / f"sample_{i:06d}.npz", **arrays)
        # relative and absolute paths, and a blank line, all in one list
        lines.append(
            f"samples/sample_{i:06d}.npz" if i % 2 else str(samples / f"sample_{i:06d}.npz")
        )
        if i == 0:
            lines.append("")
    data_list = root / "data_list.txt"
    data_list.write_text("\n".join(lines) + "\n")
    return data_list


class FakeModel:
    """Stands in for the MagicMind model: logits that say which sample came in."""

    def __init__(self) -> None:
        self.calls: list[list[np.ndarray]] = []
        self.loaded: list[tuple[Path, int]] = []

    def load(self, path: Path, device_id: int) -> runner.RunModel:
        self.loaded.append((path, device_id))
        return self

    def __call__(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        self.calls.append(arrays)
        ids = arrays[0]
        logits = np.stack([ids, arrays[1], arrays[2]], axis=-1).astype(np.float32)
        return [logits, np.zeros(1, dtype=np.float32)]


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.mm"
    path.write_bytes(b"not a real MagicMind model")
    return path


def argv(model: object, data_list: object, out: object, *more: str) -> list[str]:
    """The runner's command line, as the cambricon profile's infer step writes it."""
    return ["--model", str(model), "--data-list", str(data_list), "--output-dir", str(out), *more]


def run_main(args: list[str], fake: FakeModel | None = None) -> int:
    return runner.main(args, load_model=fake.load if fake else None)


@pytest.mark.parametrize("keys", ["indexed", "names"])
def test_outputs_are_named_by_data_list_line_in_input_order(
    tmp_path: Path, model_file: Path, keys: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data_list = write_samples(tmp_path, 12, keys=keys)
    out = tmp_path / "out"
    fake = FakeModel()

    status = run_main(
        argv(model_file, data_list, out, "--device", "3"),
        fake,
    )

    assert status == 0
    assert fake.loaded == [(model_file, 3)]
    assert sorted(p.name for p in out.iterdir()) == [f"{i:06d}.npz" for i in range(12)]
    for i in range(12):
        with np.load(out / f"{i:06d}.npz") as saved:
            assert saved.files == ["output_0", "output_1"]
            logits = saved["output_0"]
        assert logits.shape == (1, 8, 3)
        # input order: ids, mask, type ids -> the fake's channels 0, 1, 2
        assert (logits[..., 0] == i).all() and (logits[..., 1] == 1).all()
        assert (logits[..., 2] == 0).all()
    assert all(len(call) == 3 for call in fake.calls)
    printed = capsys.readouterr().out
    assert "samples=12" in printed and "progress: 12/12 samples" in printed


def test_indexed_keys_follow_their_number_not_the_text_order() -> None:
    arrays = {f"input_{i}": np.array([i]) for i in (10, 2, 0, 1, 9, 3, 4, 5, 6, 7, 8)}
    assert [int(a[0]) for a in runner.ordered_inputs(arrays)] == list(range(11))
    named = {"input_ids": np.array([0]), "attention_mask": np.array([1])}
    assert [int(a[0]) for a in runner.ordered_inputs(named)] == [0, 1]


def test_a_gap_in_indexed_keys_is_refused() -> None:
    with pytest.raises(runner.DataError, match="input_0..input_1"):
        runner.ordered_inputs({"input_0": np.zeros(1), "input_2": np.zeros(1)})


def test_a_missing_sample_names_the_list_and_line(
    tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_list = write_samples(tmp_path, 2)
    data_list.write_text(data_list.read_text() + "samples/gone.npz\n")
    fake = FakeModel()

    status = run_main(
        argv(model_file, data_list, tmp_path / "out"),
        fake,
    )

    assert status == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"{data_list}:4" in err[0] and "gone.npz" in err[0]
    assert fake.calls == []


def test_a_damaged_sample_is_a_one_line_error(
    tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_list = write_samples(tmp_path, 3)
    (tmp_path / "samples" / "sample_000001.npz").write_bytes(b"PK\x03\x04 truncated")

    status = run_main(
        argv(model_file, data_list, tmp_path / "out"),
        FakeModel(),
    )

    assert status == 1
    assert "sample_000001.npz" in capsys.readouterr().err
    # the first sample's output is complete, and nothing half-written is left behind
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["000000.npz"]


def test_options_are_required_and_checked(
    model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        runner.main(["--model", str(model_file)], load_model=FakeModel().load)
    assert exit_info.value.code == 2
    assert "--data-list" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        runner.main(
            ["--model", str(model_file), "--data-list", "l", "--output-dir", "o", "--device", "-1"],
            load_model=FakeModel().load,
        )


def test_missing_model_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = run_main(
        ["--model", str(tmp_path / "none.mm"), "--data-list", "l", "--output-dir", "o"],
        FakeModel(),
    )
    assert status == 2
    assert "no such model file" in capsys.readouterr().err


def test_without_magicmind_it_says_so_in_one_line_and_exits_2(
    tmp_path: Path,
    model_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "magicmind", None)  # import magicmind... -> ImportError
    data_list = write_samples(tmp_path, 1)

    status = runner.main(argv(model_file, data_list, tmp_path / "out"))

    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "magicmind.python.runtime" in err[0]
    assert not (tmp_path / "out").exists()


def test_the_program_runs_as_a_module_without_magicmind_or_textual(
    tmp_path: Path, model_file: Path
) -> None:
    data_list = write_samples(tmp_path, 1)
    code = (
        "import sys; sys.modules['magicmind'] = None\n"
        "from kiln_lab.tui.commands import magicmind_infer as m\n"
        "status = m.main(sys.argv[1:])\n"
        "assert 'textual' not in sys.modules\n"
        "sys.exit(status)\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "--model",
            str(model_file),
            "--data-list",
            str(data_list),
            "--output-dir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "not importable" in done.stderr


class FakeStatus:
    def __init__(self, ok: bool = True) -> None:
        self._ok = ok

    def ok(self) -> bool:
        return self._ok

    def __str__(self) -> str:
        return "ok" if self._ok else "MM_ERROR"


class FakeTensor:
    def __init__(self, log: list[str]) -> None:
        self.log, self.array = log, None

    def from_numpy(self, array: np.ndarray) -> None:
        self.log.append("from_numpy")
        self.array = array

    def to(self, device: object) -> None:
        self.log.append("to")

    def asnumpy(self) -> np.ndarray:
        return self.array


def fake_magicmind(log: list[str], *, inputs: int = 2, enqueue_ok: bool = True) -> object:
    """The parts of ``magicmind.python.runtime`` the zoo's MMRunner uses, recorded in ``log``."""

    class Context:
        def create_inputs(self) -> list[FakeTensor]:
            return [FakeTensor(log) for _ in range(inputs)]

        def enqueue(self, ins: list[FakeTensor], outs: list[FakeTensor], queue: object):
            log.append("enqueue")
            result = FakeTensor(log)
            result.array = ins[0].array * 10
            outs.append(result)
            return FakeStatus(enqueue_ok)

    class Model:
        EngineConfig = SimpleNamespace

        def deserialize_from_file(self, path: str) -> FakeStatus:
            log.append(f"load {Path(path).name}")
            return FakeStatus()

        def create_i_engine(self, config: SimpleNamespace) -> object:
            log.append(f"engine {config.device_type}")
            return SimpleNamespace(create_i_context=Context)

        def get_input_num(self) -> int:
            return inputs

        def get_output_num(self) -> int:
            return 1

    class Device:
        id = -1

        def active(self) -> FakeStatus:
            log.append(f"device {self.id}")
            return FakeStatus()

        def create_queue(self) -> object:
            return SimpleNamespace(sync=lambda: log.append("sync") or FakeStatus())

    class System:
        def __enter__(self) -> System:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def device_count(self) -> int:
            return 2

    return SimpleNamespace(Model=Model, Device=Device, System=System)


def test_the_magicmind_model_follows_the_zoo_runner(model_file: Path) -> None:
    log: list[str] = []
    model = runner.MagicMindModel(fake_magicmind(log), model_file, 1)

    outputs = model([np.array([[1, 2]]), np.array([[1, 1]])])

    assert [o.tolist() for o in outputs] == [[[10, 20]]]
    assert log == [
        "load model.mm",
        "device 1",
        "engine MLU",
        "from_numpy",
        "to",
        "from_numpy",
        "to",
        "enqueue",
        "sync",
    ]


def test_the_magicmind_model_reports_failures(model_file: Path) -> None:
    with pytest.raises(runner.RuntimeFailure, match="no MLU 5"):
        runner.MagicMindModel(fake_magicmind([]), model_file, 5)
    model = runner.MagicMindModel(fake_magicmind([], enqueue_ok=False), model_file, 0)
    with pytest.raises(runner.RuntimeFailure, match="enqueue failed: MM_ERROR"):
        model([np.zeros((1, 2)), np.zeros((1, 2))])
    with pytest.raises(runner.RuntimeFailure, match="takes 2 inputs, the sample has 3"):
        model([np.zeros((1, 2))] * 3)
