"""Train a recipe from scratch, keep the best epoch on dev, report test, save and card it.

Deterministic for a given recipe, seed and thread count: the model is initialised after
``torch.manual_seed``, the data order comes from one seeded generator in this process
(no loader workers). Batches are length-bucketed (shuffle, sort by length within chunks
of 50 batches, shuffle the batches), which cuts padding several-fold on these corpora.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.data import Dataset, load_builtin
from core.encode import Encoded, encode
from core.errors import Cancelled, ConfigError
from core.models.families import get_family
from core.paths import assets_dir
from core.training.evaluation import evaluate, primary_metric
from core.training.recipes import Recipe
from core.training.record import write_card
from core.training.vocabulary import build_tokenizer, build_vocabulary, write_vocabulary

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
CHUNK_BATCHES = 50
"""Batches per sorting chunk: large enough to bucket well, small enough to stay random."""


@dataclass(frozen=True)
class TrainingProgress:
    """One progress snapshot, posted every few steps and at each phase change."""

    phase: str
    """``prepare``, ``train``, ``evaluate dev``, ``evaluate test`` or ``save``."""
    epoch: int
    epochs: int
    step: int
    total_steps: int
    loss: float | None
    """Mean training loss over the last ~50 steps."""
    examples_per_s: float
    elapsed_s: float


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


ProgressCallback = Callable[[TrainingProgress], None]


def _training_labels(encoded: Encoded, example: Any, task: str, label2id: dict[str, int]) -> Any:
    """Token labels on each word's first sub-token (-100 elsewhere), or the class id."""
    if task != "token-classification":
        return label2id[example.label]
    labels = np.full(encoded.length, IGNORE_INDEX, dtype=np.int64)
    seen: set[int] = set()
    for position, word in enumerate(encoded.word_ids or ()):
        if word is not None and word not in seen:
            seen.add(word)
            labels[position] = label2id[example.tags[word]]
    return labels


def epoch_order(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Index batches for one epoch: shuffled, sorted by length within chunks, shuffled."""
    order = rng.permutation(len(lengths))
    batches: list[np.ndarray] = []
    chunk_size = batch_size * CHUNK_BATCHES
    for start in range(0, len(order), chunk_size):
        chunk = order[start : start + chunk_size]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def _collate(
    rows: np.ndarray, encoded: Sequence[Encoded], targets: Sequence[Any], task: str, pad_id: int
) -> dict[str, Any]:
    import torch

    width = max(encoded[i].length for i in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    token_labels = np.full((len(rows), width), IGNORE_INDEX, dtype=np.int64)
    for r, i in enumerate(rows):
        n = encoded[i].length
        ids[r, :n] = encoded[i].input_ids
        mask[r, :n] = 1
        if task == "token-classification":
            token_labels[r, :n] = targets[i]
    labels = (
        token_labels if task == "token-classification" else np.array([targets[i] for i in rows])
    )
    return {
        "input_ids": torch.from_numpy(ids),
        "attention_mask": torch.from_numpy(mask),
        "labels": torch.from_numpy(labels),
    }


def _optimizer(model: Any, recipe: Recipe, total_steps: int) -> tuple[Any, Any]:
    """AdamW without decay on biases and LayerNorm, linear warm-up then linear decay to 0."""
    import torch

    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if param.ndim < 2 or "LayerNorm" in name else decay).append(param)
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": recipe.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=recipe.learning_rate,
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    warmup = max(1, int(total_steps * recipe.warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def default_command(recipe_name: str, **options: Any) -> tuple[str, ...]:
    """The ``kiln finetune`` command line equivalent to a programmatic call."""
    argv = ["kiln", "finetune", recipe_name]
    for key, value in options.items():
        if value is not None:
            argv += [f"--{key.replace('_', '-')}", str(value)]
    return tuple(argv)


def train(
    recipe: Recipe,
    out_dir: Path | str | None = None,
    *,
    cards_dir: Path | str | None = None,
    max_minutes: float | None = None,
    limit_train: int | None = None,
    limit_eval: int | None = None,
    threads: int | None = None,
    progress: ProgressCallback | None = None,
    command: Sequence[str] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> TrainingReport:
    """Train ``recipe`` from scratch, save the best epoch to ``out_dir``, write its card.

    ``max_minutes`` stops training (not evaluation) once that much time has passed;
    ``limit_train`` / ``limit_eval`` keep the first N examples of train / dev and test
    (quick runs and tests). Figures on dev pick the best epoch; test figures are
    reported once, for that epoch.
    """
    import torch

    started = time.monotonic()
    out = Path(out_dir) if out_dir else assets_dir() / "models" / recipe.name
    cards = Path(cards_dir) if cards_dir else assets_dir() / "cards"
    if command is None:
        command = default_command(
            recipe.name,
            out=out_dir,
            cards_dir=cards_dir,
            max_minutes=max_minutes,
            limit_train=limit_train,
        )
    if limit_train is not None and limit_train < 1:
        raise ConfigError(f"limit-train must be at least 1, got {limit_train}")
    notify = progress or (lambda _: None)
    notify(TrainingProgress("prepare", 0, recipe.epochs, 0, 0, None, 0.0, 0.0))

    dataset: Dataset = load_builtin(recipe.dataset)
    if dataset.task != recipe.task:
        raise ConfigError(
            f"recipe {recipe.name} is {recipe.task} but dataset {recipe.dataset} is {dataset.task}"
        )
    labels = dataset.labels
    label2id = {label: i for i, label in enumerate(labels)}
    train_examples = dataset.split("train").examples[:limit_train]
    dev_examples = dataset.split("dev").examples[:limit_eval]
    test_examples = dataset.split("test").examples[:limit_eval]
    family = get_family(recipe.family)

    texts = (
        ex.tokens if recipe.task == "token-classification" else ex.text for ex in train_examples
    )
    vocabulary = build_vocabulary(texts, min_frequency=recipe.min_char_frequency)
    tokenizer = build_tokenizer(vocabulary, max_seq_len=recipe.max_seq_len)
    encoded = encode(train_examples, tokenizer, recipe.task, recipe.max_seq_len)
    targets = [
        _training_labels(e, ex, recipe.task, label2id)
        for e, ex in zip(encoded, train_examples, strict=True)
    ]
    lengths = np.array([e.length for e in encoded])

    previous_threads = torch.get_num_threads()
    threads = threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    config = family.build_config(
        labels=labels,
        vocab_size=len(vocabulary),
        max_seq_len=recipe.max_seq_len,
        pad_token_id=tokenizer.pad_token_id,
        hidden_dropout_prob=recipe.dropout,
        attention_probs_dropout_prob=recipe.dropout,
        **recipe.architecture(),
    )
    model = family.model_class(recipe.task).from_config(config, attn_implementation="eager")
    parameters = sum(p.numel() for p in model.parameters())
    steps_per_epoch = math.ceil(len(encoded) / recipe.batch_size)
    total_steps = steps_per_epoch * recipe.epochs
    optimizer, scheduler = _optimizer(model, recipe, total_steps)
    log.info(
        "training %s: %d parameters, vocabulary %d, %d examples, %d steps",
        recipe.name, parameters, len(vocabulary), len(encoded), total_steps,
    )  # fmt: skip

    def run_eval(examples: Sequence[Any]) -> dict[str, float]:
        return evaluate(
            model,
            tokenizer,
            examples,
            task=recipe.task,
            labels=labels,
            family=family,
            seq_len=recipe.max_seq_len,
        )

    metric = primary_metric(recipe.task)
    step, best_epoch, best_score, best_state = 0, 0, -1.0, None
    losses: list[float] = []
    epoch_losses: list[float] = []
    dev_by_epoch: list[dict[str, float]] = []
    timed_out = False
    train_started = time.monotonic()
    seen_examples = 0
    try:
        model.train()
        for epoch in range(1, recipe.epochs + 1):
            epoch_start = len(losses)
            for rows in epoch_order(lengths, recipe.batch_size, rng):
                if cancel is not None and cancel():
                    raise Cancelled(f"training {recipe.name} was cancelled at step {step}")
                batch = _collate(rows, encoded, targets, recipe.task, tokenizer.pad_token_id)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=recipe.bf16_autocast):
                    loss = model(**batch).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                seen_examples += len(rows)
                losses.append(float(loss.detach()))
                elapsed = time.monotonic() - train_started
                if step % 10 == 0 or step == total_steps:
                    notify(
                        TrainingProgress(
                            "train", epoch, recipe.epochs, step, total_steps,
                            float(np.mean(losses[-50:])), seen_examples / max(elapsed, 1e-9),
                            elapsed,
                        )
                    )  # fmt: skip
                if max_minutes is not None and elapsed >= max_minutes * 60:
                    timed_out = True
                    break
            epoch_losses.append(
                float(np.mean(losses[epoch_start:])) if losses[epoch_start:] else 0.0
            )
            notify(
                TrainingProgress(
                    "evaluate dev", epoch, recipe.epochs, step, total_steps,
                    float(np.mean(losses[-50:])), seen_examples / max(elapsed, 1e-9), elapsed,
                )
            )  # fmt: skip
            dev = run_eval(dev_examples)
            dev_by_epoch.append({"epoch": epoch, "steps": step, **dev})
            log.info(
                "epoch %d: loss %.4f, dev %s %.4f", epoch, epoch_losses[-1], metric, dev[metric]
            )
            if dev[metric] > best_score:
                best_epoch, best_score = epoch, dev[metric]
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            model.train()
            if timed_out:
                log.info(
                    "stopping at step %d: the %.1f-minute limit was reached", step, max_minutes
                )
                break
        training_time = time.monotonic() - train_started
        if best_state is not None:
            model.load_state_dict(best_state)
        notify(TrainingProgress("evaluate test", best_epoch, recipe.epochs, step, total_steps,
                                None, 0.0, training_time))  # fmt: skip
        test = run_eval(test_examples)
        notify(TrainingProgress("save", best_epoch, recipe.epochs, step, total_steps,
                                None, 0.0, training_time))  # fmt: skip
        model.eval()
        _save(model, tokenizer, vocabulary, out)
    finally:
        torch.set_num_threads(previous_threads)

    window = max(1, min(20, len(losses) // 5))
    hashes = {name: dataset.split(name).content_hash for name in ("train", "dev", "test")}
    report = TrainingReport(
        recipe=recipe.name,
        out_dir=str(out),
        card_path=str(cards / f"{recipe.name}.yaml"),
        command=tuple(command),
        parameters=parameters,
        size_mb=round(_size_mb(out), 2),
        vocab_size=len(vocabulary),
        steps=step,
        epochs_run=round(step / steps_per_epoch, 3),
        best_epoch=best_epoch,
        stopped_by_time_limit=timed_out,
        threads=threads,
        training_time_s=round(training_time, 1),
        wall_time_s=round(time.monotonic() - started, 1),
        loss_start=round(float(np.mean(losses[:window])), 4),
        loss_end=round(float(np.mean(losses[-window:])), 4),
        epoch_losses=tuple(round(x, 4) for x in epoch_losses),
        dev_by_epoch=tuple(dev_by_epoch),
        dev=dev_by_epoch[best_epoch - 1] if best_epoch else {},
        test=test,
        data_hashes=hashes,
    )
    write_card(
        recipe,
        report,
        cards_dir=cards,
        labels=labels,
        limits={"limit_train": limit_train, "limit_eval": limit_eval, "max_minutes": max_minutes},
        weights_path=out,
    )
    return report


def _save(model: Any, tokenizer: Any, vocabulary: list[str], out: Path) -> None:
    """Safetensors weights, config (with id2label), tokenizer.json and vocab.txt."""
    from transformers.utils import logging as hf_logging

    out.mkdir(parents=True, exist_ok=True)
    for stale in ("pytorch_model.bin", "model.safetensors.index.json"):
        (out / stale).unlink(missing_ok=True)
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(out)
    finally:
        hf_logging.enable_progress_bar()
    tokenizer.save_pretrained(out)
    write_vocabulary(vocabulary, out)
    for path in out.iterdir():
        if path.is_file():
            path.chmod(0o644)  # shipped files: safetensors writes owner-only


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file()) / 1e6
