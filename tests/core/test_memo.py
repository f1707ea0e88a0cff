"""The fp32 reference's logits, remembered per batch across runs (core/runtimes/memo.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kiln_lab.core.runtimes.base import Batch, CompiledModel
from kiln_lab.core.runtimes.memo import MemoModel


class _Counting(CompiledModel):
    def __init__(self) -> None:
        self.calls = 0

    def run(self, batch: Batch) -> np.ndarray:
        self.calls += 1
        return batch["input_ids"].astype(np.float32) * 2


def _batch(seed: int) -> Batch:
    ids = np.random.default_rng(seed).integers(0, 100, (4, 8))
    return {"input_ids": ids, "attention_mask": np.ones_like(ids)}


def test_a_second_model_reads_what_the_first_one_ran(tmp_path: Path) -> None:
    path = tmp_path / "memo.npz"
    first_inner = _Counting()
    first = MemoModel(first_inner, path)
    expected = [first.run(_batch(i)) for i in range(3)]
    first.close()
    assert first_inner.calls == 3 and path.is_file()
    second_inner = _Counting()
    second = MemoModel(second_inner, path)
    again = [second.run(_batch(i)) for i in range(3)] + [second.run(_batch(9))]
    assert second_inner.calls == 1 and second.hits == 3  # only the new batch ran
    for got, want in zip(again, expected, strict=False):
        np.testing.assert_array_equal(got, want)
    changed = _batch(0)
    changed["attention_mask"][0, -1] = 0  # any input array differs: not the same batch
    second.run(changed)
    assert second_inner.calls == 2


def test_a_damaged_memo_is_ignored_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "memo.npz"
    path.write_bytes(b"not an npz")
    inner = _Counting()
    model = MemoModel(inner, path)
    model.run(_batch(0))
    model.close()
    assert inner.calls == 1 and MemoModel(_Counting(), path).run(_batch(0)).shape == (4, 8)


def test_a_repeated_int8_run_pairs_with_remembered_fp32_logits(
    tiny_assets: Path, kiln_home: Path
) -> None:
    from kiln_lab.core.pipeline import run_pipeline
    from kiln_lab.core.runconfig import RunConfig

    config = RunConfig(model="tiny-ner-bert", precision="int8", limit=40, guard=False)
    first = run_pipeline(config, "a", lambda e: None)
    second = run_pipeline(config, "b", lambda e: None)
    assert list((kiln_home / "cache" / "logits").glob("*.npz"))
    paired = [
        {k: v for k, v in r["metrics"]["paired"].items() if k != "seconds"} for r in (first, second)
    ]
    assert paired[0] == paired[1] and paired[0]["examples"] == 40
