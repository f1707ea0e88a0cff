"""The fp32 baseline: which earlier run an int8 or fp16 run is measured against.

``kiln report`` and the app's accuracy pane both show "Δ vs fp32"; with one rule here
they always name the same run. A baseline is a succeeded fp32 run of the same model on
the same data (dataset and split, and the same number of examples when both runs say),
never the run itself, nor one whose evaluation stopped early (``--until``) or was cut
short. A run that scored accuracy needs a baseline that scored too: a
performance-only fp32 run (random weights) has no figures to take a delta from. A
performance-only run compares speed alone, so any matching fp32 run will do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from kiln_lab.core.result import RunResult


class StoredRun(Protocol):
    """What the rule reads of a run-store row (``RunRecord`` has it)."""

    id: str
    status: str
    precision: str
    model: str
    result: Mapping[str, Any] | None
    config: Mapping[str, Any]


def data_key(run: StoredRun, result: RunResult | None = None) -> tuple[str, str] | None:
    """``(dataset, split)`` a run used: its result's once it finished, else its config's."""
    result = result if result is not None else RunResult.from_dict(run.result)
    if result.data_key is not None:
        return result.data_key
    config = run.config or {}
    if config.get("dataset"):
        return str(config["dataset"]), str(config.get("split", "test"))
    return None


def fp32_baseline(
    candidates: Iterable[StoredRun],
    *,
    model: str,
    dataset: tuple[str, str] | None,
    examples: int | None = None,
    scored: bool = True,
    exclude: str | None = None,
) -> StoredRun | None:
    """The first of ``candidates`` that can serve as the fp32 baseline, if any.

    Pass candidates newest first (as ``RunStore.runs()`` returns them) so the most recent
    baseline wins. ``dataset=None`` matches any data (the run has not named its own yet);
    ``scored`` says whether the run being compared has accuracy figures; ``exclude`` is
    its id.
    """
    for run in candidates:
        if run.id == exclude or run.status != "succeeded" or run.precision != "fp32":
            continue
        if run.model != model:
            continue
        result = RunResult.from_dict(run.result)
        if scored and not result.scored:
            continue
        if scored and result.metrics is not None and result.metrics.complete is False:
            continue  # stopped early or cut short: not the whole split to compare with
        if dataset is not None and data_key(run, result) != dataset:
            continue
        if examples is not None and result.examples not in (None, examples):
            continue
        return run
    return None


def baseline_for(run: StoredRun, *pools: Iterable[StoredRun]) -> StoredRun | None:
    """``run``'s fp32 baseline from the first pool that has one (e.g. the selection, then
    the whole history)."""
    result = RunResult.from_dict(run.result)
    for pool in pools:
        found = fp32_baseline(
            pool,
            model=run.model,
            dataset=data_key(run, result),
            examples=result.examples,
            scored=result.scored,
            exclude=run.id,
        )
        if found is not None:
            return found
    return None
