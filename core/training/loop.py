"""Train a recipe from scratch, keep the best epoch on dev, report test, save and card it.

Deterministic for a given recipe, seed and thread count: the model is initialised after
``torch.manual_seed``, the data order comes from one seeded generator in this process
(no loader workers), and batches are length-bucketed (``core.training.batches``).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kiln_lab.core.data import Dataset, load_builtin
from kiln_lab.core.errors import Cancelled, ConfigError
from kiln_lab.core.models.families import get_family
from kiln_lab.core.paths import assets_dir
from kiln_lab.core.tokenization import Encoded, encode
from kiln_lab.core.training.batches import collate, epoch_order, make_optimizer, training_labels
from kiln_lab.core.training.evaluation import evaluate, primary_metric
from kiln_lab.core.training.recipes import Recipe
from kiln_lab.core.training.record import TrainingReport, write_card
from kiln_lab.core.training.vocabulary import build_tokenizer, build_vocabulary, write_vocabulary

log = logging.getLogger(__name__)


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
    metric: str = ""
    """The task's headline figure: ``entity_f1`` or ``accuracy``."""
    dev_score: float | None = None
    """That figure on dev after the latest epoch, once there is one."""


ProgressCallback = Callable[[TrainingProgress], None]


def default_command(recipe_name: str, **options: Any) -> tuple[str, ...]:
    """The ``kiln finetune`` command line equivalent to a programmatic call."""
    argv = ["kiln", "finetune", recipe_name]
    for key, value in options.items():
        if value is not None:
            argv += [f"--{key.replace('_', '-')}", str(value)]
    return tuple(argv)


@dataclass
class _Prepared:
    """The data side of a run: splits, vocabulary, tokenizer and encoded TRAIN."""

    dataset: Dataset
    train: Sequence[Any]
    dev: Sequence[Any]
    test: Sequence[Any]
    vocabulary: list[str]
    tokenizer: Any
    encoded: list[Encoded]
    targets: list[Any]
    lengths: np.ndarray


def _prepare(recipe: Recipe, limit_train: int | None, limit_eval: int | None) -> _Prepared:
    dataset: Dataset = load_builtin(recipe.dataset)
    if dataset.task != recipe.task:
        raise ConfigError(
            f"recipe {recipe.name} is {recipe.task} but dataset {recipe.dataset} is {dataset.task}"
        )
    for name, value in (("limit-train", limit_train), ("limit-eval", limit_eval)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}")
    label2id = {label: i for i, label in enumerate(dataset.labels)}
    train = dataset.split("train").examples[:limit_train]
    tokens = recipe.task == "token-classification"
    vocabulary = build_vocabulary(
        (ex.tokens if tokens else ex.text for ex in train),  # type: ignore[union-attr]
        min_frequency=recipe.min_char_frequency,
    )
    tokenizer = build_tokenizer(vocabulary, max_seq_len=recipe.max_seq_len)
    encoded = encode(train, tokenizer, recipe.task, recipe.max_seq_len)
    return _Prepared(
        dataset=dataset,
        train=train,
        dev=dataset.split("dev").examples[:limit_eval],
        test=dataset.split("test").examples[:limit_eval],
        vocabulary=vocabulary,
        tokenizer=tokenizer,
        encoded=encoded,
        targets=[
            training_labels(e, ex, recipe.task, label2id)
            for e, ex in zip(encoded, train, strict=True)
        ],
        lengths=np.array([e.length for e in encoded]),
    )


class _Trainer:
    """One run's model, optimiser and running figures; ``fit`` trains and picks the best epoch."""

    def __init__(self, recipe: Recipe, data: _Prepared, notify: ProgressCallback) -> None:
        family = get_family(recipe.family)
        self.recipe, self.data, self.family, self.notify = recipe, data, family, notify
        torch = _torch()
        torch.manual_seed(recipe.seed)
        self.rng = np.random.default_rng(recipe.seed)
        config = family.build_config(
            labels=data.dataset.labels,
            vocab_size=len(data.vocabulary),
            max_seq_len=recipe.max_seq_len,
            pad_token_id=data.tokenizer.pad_token_id,
            bos_token_id=data.tokenizer.cls_token_id,  # RoBERTa's defaults (0, 2) are
            eos_token_id=data.tokenizer.sep_token_id,  # <s>/</s> ids of its own vocabulary
            hidden_dropout_prob=recipe.dropout,
            attention_probs_dropout_prob=recipe.dropout,
            **recipe.architecture(),
        )
        self.model = family.model_class(recipe.task).from_config(
            config, attn_implementation="eager"
        )
        self.parameters = sum(p.numel() for p in self.model.parameters())
        self.steps_per_epoch = math.ceil(len(data.encoded) / recipe.batch_size)
        self.total_steps = self.steps_per_epoch * recipe.epochs
        self.optimizer, self.scheduler = make_optimizer(self.model, recipe, self.total_steps)
        self.metric = primary_metric(recipe.task)
        self.step = self.epoch = self.best_epoch = self.seen = 0
        self.losses: list[float] = []
        self.epoch_losses: list[float] = []
        self.dev_by_epoch: list[dict[str, float]] = []
        self.timed_out = False
        self.started = time.monotonic()

    def evaluate(self, examples: Sequence[Any]) -> dict[str, float]:
        return evaluate(
            self.model,
            self.data.tokenizer,
            examples,
            task=self.recipe.task,
            labels=self.data.dataset.labels,
            family=self.family,
            seq_len=self.recipe.max_seq_len,
        )

    def post(self, phase: str) -> None:
        elapsed = time.monotonic() - self.started
        self.notify(
            TrainingProgress(
                phase=phase,
                epoch=self.epoch,
                epochs=self.recipe.epochs,
                step=self.step,
                total_steps=self.total_steps,
                loss=float(np.mean(self.losses[-50:])) if self.losses else None,
                examples_per_s=self.seen / max(elapsed, 1e-9),
                elapsed_s=elapsed,
                metric=self.metric,
                dev_score=self.dev_by_epoch[-1][self.metric] if self.dev_by_epoch else None,
            )
        )

    def _train_step(self, rows: np.ndarray) -> None:
        torch = _torch()
        data = self.data
        batch = collate(
            rows,
            data.encoded,
            data.targets,
            task=self.recipe.task,
            pad_id=data.tokenizer.pad_token_id,
            max_width=self.recipe.max_seq_len,
        )
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.recipe.bf16_autocast):
            loss = self.model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.seen += len(rows)
        self.losses.append(float(loss.detach()))

    def fit(self, max_minutes: float | None, cancel: Callable[[], bool] | None) -> None:
        """Train every epoch (or until the time limit), score dev after each, keep the best."""
        best_score, best_state = -1.0, None
        self.model.train()
        for epoch in range(1, self.recipe.epochs + 1):
            self.epoch = epoch
            first = len(self.losses)
            for rows in epoch_order(self.data.lengths, self.recipe.batch_size, self.rng):
                if cancel is not None and cancel():
                    raise Cancelled(
                        f"training {self.recipe.name} was cancelled at step {self.step}"
                    )
                self._train_step(rows)
                if self.step % 10 == 0 or self.step == self.total_steps:
                    self.post("train")
                if max_minutes is not None and time.monotonic() - self.started >= max_minutes * 60:
                    self.timed_out = True
                    break
            self.epoch_losses.append(float(np.mean(self.losses[first:])))
            self.post("evaluate dev")
            dev = self.evaluate(self.data.dev)
            self.dev_by_epoch.append({"epoch": self.epoch, "steps": self.step, **dev})
            log.info(
                "epoch %d: loss %.4f, dev %s %.4f",
                self.epoch, self.epoch_losses[-1], self.metric, dev[self.metric],
            )  # fmt: skip
            if dev[self.metric] > best_score:
                self.best_epoch, best_score = self.epoch, dev[self.metric]
                best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.model.train()
            if self.timed_out:
                log.info("stopped at step %d: the %g-minute limit", self.step, max_minutes)
                break
        self.training_time = time.monotonic() - self.started
        if best_state is not None:
            self.model.load_state_dict(best_state)
        self.model.eval()


def _torch() -> Any:
    import torch

    return torch


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
    reported once, for that epoch. ``threads`` defaults to the cores this process may use.
    """
    torch = _torch()
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
            limit_eval=limit_eval,
        )
    notify = progress or (lambda _: None)
    notify(TrainingProgress("prepare", 0, recipe.epochs, 0, 0, None, 0.0, 0.0))
    data = _prepare(recipe, limit_train, limit_eval)

    previous_threads = torch.get_num_threads()
    threads = threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    try:
        trainer = _Trainer(recipe, data, notify)
        log.info(
            "training %s: %d parameters, vocabulary %d, %d examples, %d steps",
            recipe.name, trainer.parameters, len(data.vocabulary), len(data.encoded),
            trainer.total_steps,
        )  # fmt: skip
        trainer.fit(max_minutes, cancel)
        trainer.post("evaluate test")
        test = trainer.evaluate(data.test)
        trainer.post("save")
        _save(trainer.model, data.tokenizer, data.vocabulary, out)
    finally:
        torch.set_num_threads(previous_threads)

    losses = trainer.losses
    window = max(1, min(20, len(losses) // 5))
    report = TrainingReport(
        recipe=recipe.name,
        out_dir=str(out),
        card_path=str(cards / f"{recipe.name}.yaml"),
        command=tuple(command),
        parameters=trainer.parameters,
        size_mb=round(_size_mb(out), 2),
        vocab_size=len(data.vocabulary),
        steps=trainer.step,
        epochs_run=round(trainer.step / trainer.steps_per_epoch, 3),
        best_epoch=trainer.best_epoch,
        stopped_by_time_limit=trainer.timed_out,
        threads=threads,
        training_time_s=round(trainer.training_time, 1),
        wall_time_s=round(time.monotonic() - started, 1),
        loss_start=round(float(np.mean(losses[:window])), 4),
        loss_end=round(float(np.mean(losses[-window:])), 4),
        epoch_losses=tuple(round(x, 4) for x in trainer.epoch_losses),
        dev_by_epoch=tuple(trainer.dev_by_epoch),
        dev=trainer.dev_by_epoch[trainer.best_epoch - 1],
        test=test,
        data_hashes={n: data.dataset.split(n).content_hash for n in ("train", "dev", "test")},
    )
    write_card(
        recipe,
        report,
        cards_dir=cards,
        labels=data.dataset.labels,
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
