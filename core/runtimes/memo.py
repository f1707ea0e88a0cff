"""Logits of the fp32 reference graph, remembered per input batch.

Every int8 or fp16 run scores the fp32 graph too: the accuracy guard on the dev split,
and the paired comparison on the examples the run reports. Those are the same graph on
the same batches run after run, so the logits are kept on disk, keyed by the graph's
sha256 and the session's settings, and each batch by a hash of its arrays; a repeated
run reads them back instead of paying a second fp32 pass (a full pass of the NER test
split is about 6 MB of logits).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kiln_lab.core.runtimes.base import Batch, CompiledModel

log = logging.getLogger(__name__)


def _digest(batch: Batch) -> str:
    digest = hashlib.sha256()
    for name in sorted(batch):
        array = np.ascontiguousarray(batch[name])
        digest.update(f"{name}{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:32]


class MemoModel(CompiledModel):
    """``inner`` with its outputs remembered in ``path`` (an .npz, one array a batch)."""

    def __init__(self, inner: CompiledModel, path: Path) -> None:
        self.inner = inner
        self.path = path
        self.description = inner.description
        self.hits = 0
        self.misses = 0
        self._memo: dict[str, np.ndarray] = {}
        self._new = False
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as stored:
                    self._memo = {key: stored[key] for key in stored.files}
            except (OSError, ValueError) as exc:
                log.warning("ignoring the damaged logits memo %s: %s", path, exc)

    def run(self, batch: Batch) -> np.ndarray:
        key = _digest(batch)
        found = self._memo.get(key)
        if found is not None:
            self.hits += 1
            return found.copy()
        self.misses += 1
        out = self.inner.run(batch)
        self._memo[key] = np.asarray(out)
        self._new = True
        return out

    def run_many(self, batches: Sequence[Batch]) -> list[np.ndarray]:
        return [self.run(batch) for batch in batches]

    def settings(self) -> dict[str, Any]:
        return self.inner.settings()

    def close(self) -> None:
        self.save()
        self.inner.close()

    def save(self) -> None:
        """Write the memo whole (a temporary file renamed over it); a failure only logs."""
        if not self._new:
            return
        tmp: str | None = None
        try:
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".memo-", suffix=".npz")
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, **self._memo)
            os.replace(tmp, self.path)
            self._new = False
        except OSError as exc:
            log.warning("could not keep the fp32 logits in %s: %s", self.path, exc)
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)


def remembered(model: CompiledModel, graph: Path) -> MemoModel:
    """``model`` (running the fp32 ``graph``) with its logits remembered across runs."""
    from kiln_lab.core.export import cache_key, file_sha256
    from kiln_lab.core.paths import cache_dir

    settings = {k: v for k, v in model.settings().items() if k != "cpu_affinity"}
    key = cache_key(kind="fp32-logits", version=1, graph=file_sha256(graph), settings=settings)
    return MemoModel(model, cache_dir("logits") / f"{key}.npz")
