"""``magicmind_infer``: a file-in, file-out runner for a Cambricon MagicMind model.

MagicMind ships no tool that reads inputs from files and writes outputs to files
(``mm_run`` only times a model), so Kiln's ``cambricon-mlu370`` profile runs this one
as its ``infer`` step, with the host's Python where MagicMind is installed::

    python -m kiln_lab.tui.commands.magicmind_infer --model model.mm \\
        --data-list inputs/data_list.txt --output-dir outputs --device 0

It reads the ``npz-list`` layout: a data list with one ``.npz`` path per line (relative
paths are taken from the list's folder), each holding one sample's arrays, keyed
``input_0``, ``input_1``, ... or by the model's input names, in the model's input
order. Each sample's outputs go to ``{index:06d}.npz`` in data-list order, keys
``output_0``, ``output_1``, ... (as VastModelZOO's ``vsx_ner.py`` writes them); a file
appears only once complete, so an interrupted run leaves no half-written output.

The model is driven the way Cambricon's model zoo drives it (magicmind_cloud,
``buildin/python_common/mm_runner.py``, used by the ``infer_python/infer.py`` of
``buildin/nlp/LanguageModeling/roberta_pytorch``, chinese-roberta-wwm-ext on
ChnSentiCorp): ``Model.deserialize_from_file``, an MLU ``Device``, an engine and a
context, one queue, ``Tensor.from_numpy`` / ``to(device)``, ``Context.enqueue``,
``Queue.sync`` and ``asnumpy()``. MagicMind is imported only in :func:`main`, so this
module imports (and is tested) without it; it never imports Textual.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kiln_lab.core.errors import DataError, KilnError, RuntimeFailure

PROG = "magicmind-infer"

RunModel = Callable[[list[np.ndarray]], list[np.ndarray]]
"""One sample's input arrays, in the model's input order -> its output arrays."""

LoadModel = Callable[[Path, int], RunModel]
"""(model file, device index) -> the function that runs one sample."""

_INDEXED = re.compile(r"input_(\d+)")


def output_name(index: int) -> str:
    """The output file of the sample on line ``index`` (from 0) of the data list."""
    return f"{index:06d}.npz"


def read_data_list(path: Path) -> list[Path]:
    """The ``.npz`` files the data list names, in its order (blank lines skipped); a
    missing file is a :class:`DataError` naming the list's line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(f"cannot read the data list: {exc.strerror}", path=path) from None
    samples = []
    for number, line in enumerate(lines, start=1):
        entry = line.strip()
        if not entry:
            continue
        sample = Path(entry)
        if not sample.is_absolute():
            sample = path.parent / sample
        if not sample.is_file():
            raise DataError(f"no such sample file: {sample}", path=path, line=number)
        samples.append(sample)
    if not samples:
        raise DataError(f"the data list {path} names no samples")
    return samples


def ordered_inputs(arrays: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The sample's arrays in the model's input order.

    ``input_0``, ``input_1``, ... are put in index order (``input_10`` after
    ``input_9``); named arrays keep the order they were written in, which is the
    model's input order in Kiln's layout writer.
    """
    keys = list(arrays)
    matches = [_INDEXED.fullmatch(k) for k in keys]
    if keys and all(matches):
        indices = sorted(int(m.group(1)) for m in matches if m)
        if indices != list(range(len(keys))):
            raise DataError(f"indexed keys must be input_0..input_{len(keys) - 1}: {keys}")
        return [np.asarray(arrays[f"input_{i}"]) for i in indices]
    return [np.asarray(arrays[k]) for k in keys]


def _load_sample(path: Path) -> list[np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return ordered_inputs({k: data[k] for k in data.files})
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read the sample: {exc}", path=path) from None


def _save_outputs(path: Path, outputs: Sequence[np.ndarray]) -> None:
    """Write ``output_0``, ``output_1``, ... to ``path`` under a temporary name, then
    rename it into place: a reader never sees a half-written file."""
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "wb") as handle:
        np.savez(handle, **{f"output_{i}": np.asarray(o) for i, o in enumerate(outputs)})
    os.replace(partial, path)


def run_data_list(
    data_list: Path,
    output_dir: Path,
    run_model: RunModel,
    *,
    report: Callable[[str], None] = print,
) -> int:
    """Run every sample of ``data_list`` through ``run_model``; the number written."""
    samples = read_data_list(data_list)
    output_dir.mkdir(parents=True, exist_ok=True)
    total = len(samples)
    step = max(1, total // 10)
    for index, sample in enumerate(samples):
        outputs = run_model(_load_sample(sample))
        if not outputs:
            raise RuntimeFailure(f"the model returned no outputs for {sample}")
        _save_outputs(output_dir / output_name(index), outputs)
        if (index + 1) % step == 0 or index + 1 == total:
            report(f"progress: {index + 1}/{total} samples")
    return total


def _check(status: Any, what: str) -> None:
    if not status.ok():
        raise RuntimeFailure(f"MagicMind {what} failed: {status}")


class MagicMindModel:
    """A MagicMind model on one MLU, run one sample at a time (as the zoo's MMRunner)."""

    def __init__(self, mm: Any, model_path: Path, device_id: int) -> None:
        self.model = mm.Model()
        loaded = self.model.deserialize_from_file(str(model_path))
        if loaded is not None:  # the zoo's MMRunner ignores this call's result
            _check(loaded, f"loading {model_path}")
        with mm.System() as system:
            count = system.device_count()
            if not 0 <= device_id < count:
                raise RuntimeFailure(f"no MLU {device_id}: MagicMind sees {count} device(s)")
            self.device = mm.Device()
            self.device.id = device_id
            _check(self.device.active(), f"activating MLU {device_id}")
            config = mm.Model.EngineConfig()
            config.device_type = "MLU"
            self.engine = self.model.create_i_engine(config)
            if self.engine is None:
                raise RuntimeFailure("MagicMind could not create an engine for the model")
            self.context = self.engine.create_i_context()
            if self.context is None:
                raise RuntimeFailure("MagicMind could not create a context for the model")
            self.queue = self.device.create_queue()
            if self.queue is None:
                raise RuntimeFailure(f"MagicMind could not create a queue on MLU {device_id}")
            self.inputs = self.context.create_inputs()
        self.input_count = self.model.get_input_num()
        self.output_count = self.model.get_output_num()

    def __call__(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        if len(arrays) != self.input_count:
            raise RuntimeFailure(
                f"the model takes {self.input_count} inputs, the sample has {len(arrays)}"
            )
        for tensor, array in zip(self.inputs, arrays, strict=True):
            tensor.from_numpy(np.ascontiguousarray(array))
            tensor.to(self.device)
        outputs: list[Any] = []
        _check(self.context.enqueue(self.inputs, outputs, self.queue), "enqueue")
        _check(self.queue.sync(), "queue sync")
        return [np.asarray(outputs[i].asnumpy()) for i in range(self.output_count)]


def _magicmind_loader() -> LoadModel | None:
    """The loader that uses MagicMind's Python runtime, or None where it is missing."""
    try:
        import magicmind.python.runtime as mm
    except ImportError:
        return None
    return lambda path, device_id: MagicMindModel(mm, path, device_id)


def main(argv: Sequence[str] | None = None, *, load_model: LoadModel | None = None) -> int:
    """Parse the options, run the data list, write the outputs; the exit status.

    ``load_model`` replaces MagicMind (tests pass a fake); without it MagicMind's
    Python runtime is imported here, and its absence is exit status 2.
    """
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, type=Path, help="MagicMind model file")
    parser.add_argument(
        "--data-list", required=True, type=Path, help="text file, one .npz sample per line"
    )
    parser.add_argument(
        "--output-dir", required=True, type=Path, help="where {index:06d}.npz files go"
    )
    parser.add_argument("--device", type=int, default=0, help="MLU index (default 0)")
    args = parser.parse_args(argv)
    if args.device < 0:
        parser.error("--device must be 0 or more")
    if not args.model.is_file():
        print(f"{PROG}: error: no such model file: {args.model}", file=sys.stderr)
        return 2
    if load_model is None:
        load_model = _magicmind_loader()
        if load_model is None:
            print(
                f"{PROG}: error: MagicMind's Python runtime (magicmind.python.runtime) is "
                f"not importable by {sys.executable}; install the magicmind wheel from the "
                "MagicMind release into this Python",
                file=sys.stderr,
            )
            return 2
    try:
        samples = read_data_list(args.data_list)
        print(
            f"{PROG}: model={args.model} device={args.device} samples={len(samples)}",
            flush=True,
        )
        run_model = load_model(args.model, args.device)
        written = run_data_list(
            args.data_list, args.output_dir, run_model, report=lambda s: print(s, flush=True)
        )
    except KilnError as exc:
        print(f"{PROG}: error: {exc.one_line()}", file=sys.stderr)
        return 1
    print(f"{PROG}: wrote {written} output files to {args.output_dir}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
