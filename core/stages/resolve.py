"""The resolve stage: every cheap check before any heavy work.

:func:`preflight` is also what the CLI and the app call before a run record exists, so
bad input is refused without starting a worker; the stage repeats it as its first step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln_lab.core.errors import ConfigError, DataError
from kiln_lab.core.pipeline import RunState, StageRunner, check_dataset_labels
from kiln_lab.core.runconfig import RunConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preflight:
    """What resolve found: checked before any heavy work, by the CLI and the worker."""

    card: Any
    profile: Any
    dataset: Any
    split: Any
    weights: Path | None
    batch_size: int
    seq_len: int


def preflight(cfg: RunConfig) -> Preflight:
    """Check card, profile, precision, dataset and weights; raise a ``KilnError`` if wrong.

    Cheap on purpose (no torch import), so the CLI can refuse bad input before a run
    record exists, and the worker's resolve stage repeats it as its first step.
    """
    from kiln_lab.core.data import builtin_datasets, load_builtin, read_file
    from kiln_lab.core.models import get_card, locate_weights
    from kiln_lab.core.profiles import get_profile, require_available

    card = get_card(cfg.model)
    profile = get_profile(cfg.profile)
    require_available(profile)
    profile.require_precision(cfg.precision)
    if cfg.dataset_file:
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
    if not cfg.perf_only:
        weights = locate_weights(card, Path(cfg.weights) if cfg.weights else None)
    seq_len = cfg.seq_len or profile.defaults.seq_len or card.max_seq_len
    if seq_len > card.max_seq_len:
        raise ConfigError(
            f"sequence length {seq_len} exceeds the model's {card.max_seq_len}",
            hint=f"use --seq-len {card.max_seq_len} or less",
        )
    batch_size = cfg.batch_size or profile.defaults.batch_size
    return Preflight(card, profile, dataset, split, weights, batch_size, seq_len)


def resolve(state: RunState, run: StageRunner) -> None:
    cfg = state.config
    with run.stage("resolve") as summary:
        found = preflight(cfg)
        state.card, state.profile = card, profile = found.card, found.profile
        state.dataset, state.split = found.dataset, found.split
        state.batch_size, state.seq_len = found.batch_size, found.seq_len
        summary |= {
            "model": card.name,
            "family": card.family,
            "profile": profile.name,
            "precision": cfg.precision,
            "dataset": state.dataset.name,
            "split": state.split.name,
            "examples": len(state.split),
            "data_hash": state.split.content_hash,
            "batch_size": state.batch_size,
            "seq_len": state.seq_len,
            "weights": str(found.weights) if found.weights else "random (performance-only)",
        }
        log.info(
            "model %s (%s, %s), profile %s, %s, %d examples of %s/%s",
            card.name,
            card.family,
            card.task,
            profile.name,
            cfg.precision,
            len(state.split),
            state.dataset.name,
            state.split.name,
        )
