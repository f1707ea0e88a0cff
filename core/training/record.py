"""The model card a training run writes: identity, architecture, and the training record.

The record says how to reproduce the weights (the exact command, seed, data hashes,
versions) and what they scored. Its test figures become the card's ``reference``,
which every later pipeline run of the model is compared with. The file is validated
by loading it back through the card schema before the run is called done.
"""

from __future__ import annotations

import datetime as dt
import platform
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from kiln_lab.core.models.cards import ModelCard, load_card_file
from kiln_lab.core.paths import assets_dir

if TYPE_CHECKING:
    from kiln_lab.core.training.recipes import Recipe


@dataclass(frozen=True)
class TrainingReport:
    """What a training run did and reached; mirrored in the card's ``training`` record."""

    recipe: str
    out_dir: str
    card_path: str
    command: tuple[str, ...]
    parameters: int
    size_mb: float
    vocab_size: int
    steps: int
    epochs_run: float
    best_epoch: int
    stopped_by_time_limit: bool
    threads: int
    training_time_s: float
    wall_time_s: float
    loss_start: float
    loss_end: float
    epoch_losses: tuple[float, ...]
    dev_by_epoch: tuple[dict[str, float], ...]
    dev: dict[str, float]
    test: dict[str, float]
    data_hashes: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


REFERENCE_SOURCE = "kiln finetune (this card's training record)"
_FIGURE_KEYS = (
    "entity_f1",
    "entity_precision",
    "entity_recall",
    "token_accuracy",
    "accuracy",
    "macro_f1",
)


def _figures(scores: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in scores.items() if k in _FIGURE_KEYS or k in ("examples", "truncated")}


def _weights(name: str, weights_path: Path) -> dict[str, str]:
    """builtin when saved where built-in models live, else a local directory."""
    builtin = assets_dir() / "models" / name
    if weights_path.resolve() == builtin.resolve():
        return {"source": "builtin", "path": name}
    return {"source": "local", "path": str(weights_path.resolve())}


def card_data(
    recipe: Recipe,
    report: TrainingReport,
    *,
    labels: tuple[str, ...],
    limits: dict[str, Any],
    weights_path: Path,
) -> dict[str, Any]:
    """The card as plain data, in the order it is written."""
    import torch
    import transformers

    primary = "entity_f1" if recipe.task == "token-classification" else "accuracy"
    test_value = report.test.get(primary, 0.0)
    training: dict[str, Any] = {
        "command": shlex.join(report.command),
        "seed": recipe.seed,
        "recipe": {k: v for k, v in recipe.to_dict().items() if k not in ("title", "description")},
        "data": {"dataset": recipe.dataset, "hashes": report.data_hashes},
        "limits": {k: v for k, v in limits.items() if v is not None} or None,
        "training_time_s": report.training_time_s,
        "wall_time_s": report.wall_time_s,
        "epochs": recipe.epochs,
        "epochs_run": report.epochs_run,
        "steps": report.steps,
        "best_epoch": report.best_epoch,
        "stopped_by_time_limit": report.stopped_by_time_limit,
        "loss": {
            "start": report.loss_start,
            "end": report.loss_end,
            "by_epoch": list(report.epoch_losses),
        },
        "dev": _figures(report.dev),
        "dev_by_epoch": [{"epoch": d["epoch"], primary: d[primary]} for d in report.dev_by_epoch],
        "test": _figures(report.test),
        "parameters": report.parameters,
        "size_mb": report.size_mb,
        "versions": {
            "python": platform.python_version(),
            "torch": str(torch.__version__),
            "transformers": str(transformers.__version__),
        },
        "threads": report.threads,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
    }
    if training["limits"] is None:
        del training["limits"]
    return {
        "name": recipe.name,
        "title": recipe.title,
        "family": recipe.family,
        "task": recipe.task,
        "languages": ["zh"],
        "labels": list(labels),
        "max_seq_len": recipe.max_seq_len,
        "default_dataset": recipe.dataset,
        "description": recipe.description,
        "weights": _weights(recipe.name, weights_path),
        "architecture": {
            **recipe.architecture(),
            "vocab_size": report.vocab_size,
            "tokenizer": "cjk-chars",
        },
        "reference": [
            {
                "metric": primary,
                "value": round(float(test_value), 4),
                "precision": "fp32",
                "runtime": "PyTorch",
                "source": REFERENCE_SOURCE,
                # Said in full: a reader must not take it for a public test set's figure.
                "note": f"Kiln's built-in test split of {recipe.dataset}, not a public test set",
                "dataset": f"{recipe.dataset}:test",
            }
        ],
        "training": training,
    }


def write_card(
    recipe: Recipe,
    report: TrainingReport,
    *,
    cards_dir: Path,
    labels: tuple[str, ...],
    limits: dict[str, Any],
    weights_path: Path,
) -> ModelCard:
    """Write ``cards_dir/<name>.yaml`` and return it as loaded back through the schema."""
    data = card_data(recipe, report, labels=labels, limits=limits, weights_path=weights_path)
    cards_dir.mkdir(parents=True, exist_ok=True)
    path = cards_dir / f"{recipe.name}.yaml"
    header = (
        f"# Trained by Kiln: `{shlex.join(report.command)}`.\n"
        "# Written by the training run; retrain rather than edit the figures by hand.\n"
    )
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(header + body, encoding="utf-8")
    try:
        load_card_file(tmp)  # a card the schema rejects is never put in place
    except Exception:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)
    return load_card_file(path)
