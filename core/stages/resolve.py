"""The resolve stage: every cheap check before any heavy work.

:func:`preflight` is also what the CLI and the app call before a run record exists, so
bad input is refused without starting a worker; the stage repeats it as its first step.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln_lab.core.data.holdout import Holdout, hold_apart
from kiln_lab.core.errors import ConfigError, DataError, LabelMismatch, internal_error
from kiln_lab.core.runconfig import CALIBRATION_ONLY, RunConfig, options_apply
from kiln_lab.core.runtimes import Runtime, get_runtime
from kiln_lab.core.stages.context import StageContext

if TYPE_CHECKING:
    from kiln_lab.core.data.types import Dataset, Split
    from kiln_lab.core.models.cards import ModelCard
    from kiln_lab.core.profiles import Profile

log = logging.getLogger(__name__)

Chooser = Callable[[RunConfig, str, Callable[[], bool]], dict[str, Any]]


@dataclass(frozen=True)
class Resolved:
    """What resolve found: the card, profile, data and shapes every later stage uses."""

    card: ModelCard
    profile: Profile
    dataset: Dataset
    split: Split
    weights: Path | None
    """The weights directory found; None for a performance-only run (random weights)."""
    batch_size: int
    seq_len: int
    held: Holdout | None = None
    """Part of a user's file held apart for calibration and the guard (data/holdout.py)."""

    def apart(self, name: str) -> Split:
        """The examples calibration (``train``) or the int8 guard (``dev``) draws from:
        the data set's own split, else the part held apart from the user's file; the
        reported examples only when the file is too small to hold any apart (logged)."""
        if name in self.dataset.splits:
            return self.dataset.split(name)
        if self.held is not None and len(self.held.held):
            return self.held.held
        log.warning(
            "%s is too small to hold examples apart: %s uses the examples it reports on",
            self.dataset.name,
            "calibration" if name == "train" else "the accuracy guard",
        )
        return self.split

    @property
    def runtime(self) -> Runtime:
        return get_runtime(self.profile.runtime)

    @property
    def static_shape(self) -> tuple[int, int] | None:
        return (self.batch_size, self.seq_len) if self.profile.static_shapes else None


def preflight(cfg: RunConfig, *, on_this_host: bool = True) -> Resolved:
    """Check card, profile, precision, dataset and weights; raise a ``KilnError`` if wrong.

    Cheap on purpose (no torch import), so the CLI can refuse bad input before a run
    record exists, and the worker's resolve stage repeats it as its first step.
    ``on_this_host=False`` leaves out what depends on the host that will run it (the
    profile's availability, the weights on disk): a matrix driver checks a cluster
    cell with it, and the cell's own resolve stage checks the rest where it runs.
    """
    from kiln_lab.core.data import builtin_datasets, load_builtin, read_file
    from kiln_lab.core.data.detect import check_task
    from kiln_lab.core.models import get_card, locate_weights
    from kiln_lab.core.profiles import get_profile, require_available

    if cfg.is_auto:
        cfg = cfg.stand_in()  # checks the model and data; the build is chosen later
    card = get_card(cfg.model)
    profile = get_profile(cfg.profile)
    if on_this_host:
        require_available(profile)
    profile.require_precision(cfg.precision)
    get_runtime(profile.runtime).require(profile, cfg.precision)
    _refuse_calibration_for_dynamic(cfg, profile)
    if cfg.dataset_file:
        check_task(cfg.dataset_file, card.name, card.task)  # before labels: names both tasks
        dataset = read_file(Path(cfg.dataset_file), cfg.dataset_format, card.labels)
        split = dataset.split("file")
    else:
        name = cfg.dataset or card.default_dataset
        if name not in builtin_datasets():
            raise DataError(
                f"dataset '{name}' does not ship with Kiln (built-in: "
                f"{', '.join(builtin_datasets())})",
                path=card.card_path if not cfg.dataset else None,
                hint="evaluate on your copy with --dataset-file FILE --format bio|tsv|xnli",
            )
        dataset = load_builtin(name)
        split = dataset.split(cfg.split)
    if dataset.task != card.task:
        raise ConfigError(
            f"dataset '{dataset.name}' is for {dataset.task}, but model '{card.name}' does "
            f"{card.task}",
            hint="pick a dataset of the model's task",
        )
    check_dataset_labels(card, dataset)
    weights = None
    if not cfg.perf_only and on_this_host:
        weights = locate_weights(card, Path(cfg.weights) if cfg.weights else None)
    seq_len = cfg.seq_len or profile.defaults.seq_len or card.max_seq_len
    if seq_len > card.max_seq_len:
        raise ConfigError(
            f"sequence length {seq_len} exceeds the model's {card.max_seq_len}",
            hint=f"use --seq-len {card.max_seq_len} or less",
        )
    batch_size = cfg.batch_size or profile.defaults.batch_size
    held = None
    if _needs_data_apart(cfg, profile, dataset):
        held = hold_apart(split, max(cfg.guard_samples, profile.int8.calibration_samples))
        split = held.reported
    return Resolved(card, profile, dataset, split, weights, batch_size, seq_len, held)


def _needs_data_apart(cfg: RunConfig, profile: Profile, dataset: Dataset) -> bool:
    """int8 that calibrates or is guarded, on data with no train or dev split of its own.

    Dynamic int8 without the guard reads no examples before evaluating, so nothing is
    held apart for it and every example is reported on.
    """
    if cfg.precision != "int8" or cfg.perf_only:
        return False
    static = (cfg.quantization or profile.int8.method) == "static"
    guarded = cfg.guard and get_runtime(profile.runtime).conversion(profile, "int8").kind == "int8"
    return (static and "train" not in dataset.splits) or (guarded and "dev" not in dataset.splits)


def run(ctx: StageContext, choose: Chooser | None = None) -> Resolved:
    """``choose`` picks the build of an ``auto`` run (stages/auto.py; handed in by the
    pipeline, because it builds candidates through the stages after this one)."""
    with ctx.stage("resolve") as summary:
        if ctx.config.is_auto:
            if choose is None:
                raise internal_error(RuntimeError("an auto run reached resolve without a chooser"))
            # The fastest accurate build for this CPU, probed (or cached) before anything
            # else; the run then goes on as if the operator had named it.
            ctx.auto = choose(ctx.config, ctx.run_id, ctx.cancelled)
            ctx.config = dataclasses.replace(
                ctx.config, profile=ctx.auto["profile"], precision=ctx.auto["precision"]
            )
            summary["auto"] = {k: ctx.auto[k] for k in ("profile", "precision", "why", "cached")}
        cfg = ctx.config
        found = preflight(cfg)
        card, profile, split = found.card, found.profile, found.split
        summary |= {
            "model": card.name,
            "family": card.family,
            "profile": profile.name,
            "precision": cfg.precision,
            "dataset": found.dataset.name,
            "split": split.name,
            "examples": len(split),
            "data_hash": split.content_hash,
            "batch_size": found.batch_size,
            "seq_len": found.seq_len,
            "weights": str(found.weights) if found.weights else "random (performance-only)",
        }
        if found.held is not None:
            summary["held_apart"] = found.held.describe()
            log.warning(
                "%s has no train/dev split: %d examples held apart for calibration and the "
                "accuracy guard; the run reports on the other %d",
                found.dataset.name,
                len(found.held.held),
                len(found.held.reported),
            )
        log.info(
            "model %s (%s, %s), profile %s, %s, %d examples of %s/%s",
            card.name,
            card.family,
            card.task,
            profile.name,
            cfg.precision,
            len(split),
            found.dataset.name,
            split.name,
        )
    return found


def _refuse_calibration_for_dynamic(cfg: RunConfig, profile: Profile) -> None:
    """Calibration options on a profile whose int8 is dynamic would be read by nothing.

    ``RunConfig`` refuses them with an explicit ``--quantization dynamic``; only here is
    the profile's own default known.
    """
    method = cfg.quantization or profile.int8.method
    given = [name for name in CALIBRATION_ONLY if getattr(cfg, name) is not None]
    if cfg.precision == "int8" and method == "dynamic" and given:
        raise ConfigError(
            f"{options_apply(given)} only to static int8; profile "
            f"{profile.name} builds dynamic int8, which has no calibration pass",
            hint="add --quantization static, or drop the calibration options",
        )


def check_dataset_labels(card: ModelCard, dataset: Dataset) -> None:
    """The dataset's labels must be ones the model can predict."""
    found = set(dataset.labels)
    unknown = sorted(found - set(card.labels))
    if unknown:
        raise LabelMismatch(
            f"dataset labels {unknown} are not in model '{card.name}''s label set "
            f"{list(card.labels)}",
            path=dataset.source if Path(str(dataset.source)).exists() else card.card_path,
            hint="evaluate with a dataset of the model's task and labels, or use a model "
            "card whose labels match",
        )
