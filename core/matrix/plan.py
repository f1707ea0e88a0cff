"""A matrix asked for (models x profiles x precisions x datasets x paddings) and its cells.

Every cell becomes an ordinary :class:`~kiln_lab.core.runconfig.RunConfig`; a cell that
cannot run (unknown or unavailable profile, a precision the profile does not offer,
weights missing, a dataset of another task) keeps the reason the run's own preflight
gives, so one bad cell never fails the lot. The spec's fingerprint lets the same
command find the matrix it started before and finish only what is missing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from kiln_lab.core.errors import ConfigError, KilnError
from kiln_lab.core.runconfig import BUDGET_MODES, PADDINGS, PRECISIONS, SPLITS, RunConfig


def _names(values: Any, what: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(str(v).strip() for v in values if str(v).strip()))
    if not names:
        raise ConfigError(f"a matrix needs at least one {what}", hint=f"give --{what}s A,B")
    return names


@dataclass(frozen=True)
class MatrixSpec:
    """What an operator asked of ``kiln matrix``: the axes and the options every cell shares."""

    models: tuple[str, ...]
    profiles: tuple[str, ...]
    precisions: tuple[str, ...] = ("fp32",)
    datasets: tuple[str | None, ...] = (None,)
    """Built-in dataset names; ``None``: each card's default dataset."""
    paddings: tuple[str, ...] = ("bucket",)
    split: str = "test"
    limit: int | None = None
    """Evaluate only the first N examples of each cell (quick looks, tests)."""
    batch_size: int | None = None
    seq_len: int | None = None
    accuracy_budget: float = 1.0
    """Largest drop vs fp32 a cell may cost and still be the fastest one marked, in points."""
    budget_mode: str = "absolute"

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", _names(self.models, "model"))
        object.__setattr__(self, "profiles", _names(self.profiles, "profile"))
        object.__setattr__(self, "precisions", _names(self.precisions, "precision"))
        object.__setattr__(self, "paddings", _names(self.paddings, "padding"))
        datasets = tuple(dict.fromkeys(self.datasets)) or (None,)
        object.__setattr__(self, "datasets", datasets)
        for precision in self.precisions:
            if precision not in PRECISIONS:
                raise ConfigError(
                    f"unknown precision {precision!r}", hint=f"use {', '.join(PRECISIONS)}"
                )
        for padding in self.paddings:
            if padding not in PADDINGS:
                raise ConfigError(f"unknown padding {padding!r}", hint=f"use {', '.join(PADDINGS)}")
        if self.split not in SPLITS:
            raise ConfigError(f"unknown split {self.split!r}", hint=f"use {', '.join(SPLITS)}")
        if self.budget_mode not in BUDGET_MODES:
            raise ConfigError(
                f"unknown budget mode {self.budget_mode!r}", hint=f"use {', '.join(BUDGET_MODES)}"
            )
        if self.accuracy_budget < 0:
            raise ConfigError("the accuracy budget cannot be negative")

    def cells(self) -> list[Cell]:
        """Every combination, models outermost (the order the table prints them in)."""
        return [
            Cell(model, profile, precision, dataset, padding)
            for model in self.models
            for dataset in self.datasets
            for profile in self.profiles
            for padding in self.paddings
            for precision in self.precisions
        ]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("models", "profiles", "precisions", "datasets", "paddings"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MatrixSpec:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("models", "profiles", "precisions", "datasets", "paddings"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)

    def fingerprint(self) -> str:
        """The same command gives the same fingerprint (how a re-run finds its matrix)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Cell:
    """One coordinate of the matrix."""

    model: str
    profile: str
    precision: str
    dataset: str | None = None
    padding: str = "bucket"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def config(self, spec: MatrixSpec) -> RunConfig:
        """The cell's run: the spec's shared options on this cell's coordinates."""
        options: dict[str, Any] = {}
        if self.precision == "int8" and (spec.accuracy_budget, spec.budget_mode) != (
            1.0,
            "absolute",
        ):
            # The int8 guard reads the same budget the table marks the fastest cell by.
            options = {"accuracy_budget": spec.accuracy_budget, "budget_mode": spec.budget_mode}
        return RunConfig(
            model=self.model,
            profile=self.profile,
            precision=self.precision,
            dataset=self.dataset,
            split=spec.split,
            padding=self.padding,
            limit=spec.limit,
            batch_size=spec.batch_size,
            seq_len=spec.seq_len,
            **options,
        )


@dataclass(frozen=True)
class PlannedCell:
    """A cell with its run's config, or the reason it has none."""

    cell: Cell
    config: RunConfig | None
    reason: str | None


def reason_of(exc: KilnError) -> str:
    """An error as a cell's reason: what is wrong and the fix, without the file path."""
    return f"{exc.message} (fix: {exc.hint})" if exc.hint else exc.message


def check_cell(cell: Cell, spec: MatrixSpec, *, on_this_host: bool) -> PlannedCell:
    """The run's own preflight for one cell; on a cluster, the host-bound checks wait for
    the host (a profile no host offers is found when the cell is scheduled)."""
    from kiln_lab.core.stages.resolve import preflight

    try:
        config = cell.config(spec)
        preflight(config, on_this_host=on_this_host)
    except KilnError as exc:
        return PlannedCell(cell, None, reason_of(exc))
    return PlannedCell(cell, config, None)


def plan(spec: MatrixSpec, *, on_this_host: bool = True) -> list[PlannedCell]:
    """Every cell of ``spec``, checked."""
    return [check_cell(cell, spec, on_this_host=on_this_host) for cell in spec.cells()]
