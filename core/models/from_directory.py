"""A model card read off a Hugging Face directory, so an operator's own model needs no YAML.

A ``save_pretrained`` directory already says most of what a card holds: ``config.json``
names the architecture family (``model_type``), the task head (``architectures``), the
labels in the order the head predicts them (``id2label``) and the positions there are
room for (``max_position_embeddings``); ``tokenizer_config.json`` may say the length
the tokenizer was made for. What it cannot say comes back as a :class:`Question` with
the flag that answers it, so the command line can ask a person at a terminal and tell
a script which flag is missing. Reading a directory is cheap (JSON only, no torch), so
``--model DIR`` on ``kiln run`` infers the card again in the worker the same way.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kiln_lab.core.errors import ConfigError, ModelLoadError, ModelNotFound
from kiln_lab.core.models.cards import ModelCard
from kiln_lab.core.models.families import FAMILIES, TASKS, get_family

HEADS = {
    "ForTokenClassification": "token-classification",
    "ForSequenceClassification": "sequence-classification",
}
"""The class-name endings of the heads Kiln builds, and the task each one does."""
PAIR_LABELS = frozenset({"entailment", "neutral", "contradiction"})
"""Labels that only a sentence-pair (NLI) model predicts."""
TOKENIZER_LENGTH_CAP = 100_000
"""A ``model_max_length`` above this is transformers' "no limit" placeholder (1e30)."""


@dataclass(frozen=True)
class Question:
    """Something the directory does not say: which flag answers it, and why it is asked."""

    field: str
    flag: str
    prompt: str
    reason: str
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class CardDraft:
    """What was read off a directory: the card's fields, how each was found, and the
    questions left open (the card can be built once there are none)."""

    directory: Path
    values: dict[str, Any]
    notes: tuple[str, ...] = ()
    questions: tuple[Question, ...] = ()
    given: dict[str, Any] = field(default_factory=dict)
    """The answers this draft was read with (flags or prompts)."""

    def answered(self, **answers: Any) -> CardDraft:
        """The draft read again with ``answers`` (field -> value) added, and checked."""
        more = {k: v for k, v in answers.items() if v is not None}
        return draft_card(self.directory, **{**self.given, **more})

    def card(self, *, how_to_answer: str = "") -> ModelCard:
        """The card; ``ConfigError`` naming the missing flag(s) if questions are open."""
        if self.questions:
            first = self.questions[0]
            flags = " ".join(f"{q.flag} {'|'.join(q.choices) or 'VALUE'}" for q in self.questions)
            raise ConfigError(
                f"cannot tell {first.field.replace('_', ' ')} of the model in "
                f"{self.directory}: {first.reason}",
                path=self.directory / "config.json",
                hint=how_to_answer or f"pass {flags}",
            )
        try:
            return ModelCard.model_validate(self.values)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "card"
            raise ConfigError(
                f"the card read from {self.directory} is not valid: {where}: {first['msg']}",
                path=self.directory,
                hint="pass the value with its flag (kiln models add --help)",
            ) from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(
            f"{path.name} cannot be read: {exc}",
            path=path,
            hint="save the model again with save_pretrained, or fix the file",
        ) from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path.name} is not a JSON object", path=path)
    return data


def plain_card_name(text: str) -> str:
    """A card name (``^[a-z0-9][a-z0-9._-]*$``) made from a directory name; may be ''."""
    name = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return name[:64]


def _labels(config: dict[str, Any]) -> tuple[tuple[str, ...], str]:
    id2label = config.get("id2label")
    if isinstance(id2label, dict) and id2label:
        try:
            ordered = sorted(id2label.items(), key=lambda kv: int(kv[0]))
        except (TypeError, ValueError):
            raise ModelLoadError(
                "config.json's id2label has keys that are not numbers",
                hint="id2label maps class ids (0, 1, …) to label names",
            ) from None
        labels = tuple(str(v) for _, v in ordered)
        generic = all(re.fullmatch(r"LABEL_\d+", label) for label in labels)
        note = "labels from id2label"
        if generic:
            note += " (generic LABEL_n names: give data labels as ids 0, 1, …)"
        return labels, note
    count = int(config.get("num_labels") or 2)
    return tuple(f"LABEL_{i}" for i in range(count)), "labels: none named; transformers' default"


def _task(config: dict[str, Any], labels: tuple[str, ...], given: str | None) -> tuple[Any, str]:
    """``(task or a Question, note)`` from the head class and the labels."""
    architectures = [a for a in config.get("architectures") or () if isinstance(a, str)]
    heads = {task for a in architectures for end, task in HEADS.items() if a.endswith(end)}
    if not architectures:
        if given:
            return given, "task given (config.json names no architecture)"
        return (
            Question(
                "task",
                "--task",
                "What does the model do?",
                "config.json names no architecture",
                TASKS,
            ),
            "",
        )
    if not heads:
        raise ConfigError(
            f"the checkpoint has no classification head (architectures: "
            f"{', '.join(architectures)}); Kiln builds token and sequence classifiers",
            hint="fine-tune it for a task and save that model (…ForTokenClassification or "
            "…ForSequenceClassification) with save_pretrained",
        )
    head = heads.pop()
    if head == "token-classification":
        if given and given != head:
            raise ConfigError(
                f"--task {given} does not fit the checkpoint's head ({architectures[0]} "
                "labels every token)",
                hint="drop --task, or use --task token-classification",
            )
        return head, f"task from architectures ({architectures[0]})"
    if given:
        if given == "token-classification":
            raise ConfigError(
                f"--task token-classification does not fit the checkpoint's head "
                f"({architectures[0]} labels whole texts)",
                hint="use --task sequence-classification or sentence-pair-classification",
            )
        return given, f"task given ({architectures[0]})"
    if {label.lower() for label in labels} & PAIR_LABELS:
        return "sentence-pair-classification", "task from architectures + NLI labels"
    return (
        "sequence-classification",
        f"task from architectures ({architectures[0]}): single texts; pass --task "
        "sentence-pair-classification if it reads pairs",
    )


def _max_len(
    config: dict[str, Any], tokenizer_config: dict[str, Any], family: Any, given: int | None
) -> tuple[Any, str]:
    positions = config.get("max_position_embeddings")
    usable = None
    if isinstance(positions, int) and positions > 0:
        pad = int(config.get("pad_token_id") or 0)
        usable = positions - (pad + 1 if family.offsets_positions else 0)
    if given is not None:
        if usable is not None and given > usable:
            raise ConfigError(
                f"--max-seq-len {given} is longer than the checkpoint's {usable} positions",
                hint=f"use --max-seq-len {usable} or less",
            )
        return given, "max length given"
    tokenizer_max = tokenizer_config.get("model_max_length")
    if not (isinstance(tokenizer_max, int) and 0 < tokenizer_max < TOKENIZER_LENGTH_CAP):
        tokenizer_max = None
    found = [v for v in (usable, tokenizer_max) if v is not None]
    if not found:
        return (
            Question(
                "max_seq_len",
                "--max-seq-len",
                "Longest input in tokens?",
                "neither config.json (max_position_embeddings) nor the tokenizer says",
            ),
            "",
        )
    value = min(min(found), 4096)
    return value, "max length from " + (
        "the tokenizer's model_max_length" if value == tokenizer_max else "the position table"
    )


def _default_dataset(task: str, labels: tuple[str, ...]) -> str | None:
    """A built-in dataset of the model's task whose labels it can all predict."""
    from kiln_lab.core.data import peoples_daily, reviews

    builtins = (
        (peoples_daily, "token-classification"),
        (reviews, "sequence-classification"),
    )
    for module, its_task in builtins:
        if task == its_task and set(module.LABELS) <= set(labels):
            return str(module.NAME)
    return None


def _architecture(config: dict[str, Any], family: str, directory: Path) -> dict[str, Any] | None:
    keys = {
        "hidden_size": "hidden_size",
        "num_layers": "num_hidden_layers",
        "num_heads": "num_attention_heads",
        "intermediate_size": "intermediate_size",
        "vocab_size": "vocab_size",
    }
    values = {ours: config.get(theirs) for ours, theirs in keys.items()}
    if not all(isinstance(v, int) and v > 0 for v in values.values()):
        return None
    if family == "xlm-roberta":
        tokenizer = "xlm-r-sentencepiece"
    else:
        tokenizer = "english-wordpiece"
        vocab = directory / "vocab.txt"
        if vocab.is_file() and vocab.stat().st_size < 50_000_000:
            words = vocab.read_text(encoding="utf-8", errors="replace").split()
            cjk = sum(1 for w in words if len(w) == 1 and "\u4e00" <= w <= "\u9fff")
            if cjk > len(words) / 4:
                tokenizer = "cjk-chars"
    return {**values, "tokenizer": tokenizer}


def draft_card(
    directory: Path | str,
    *,
    name: str | None = None,
    task: str | None = None,
    max_seq_len: int | None = None,
    default_dataset: str | None = None,
    title: str | None = None,
) -> CardDraft:
    """Read a card off ``directory``; answers given here take the place of inference."""
    from kiln_lab.core.models.loading import WEIGHT_FILES

    directory = Path(directory).expanduser().resolve()
    given = {
        k: v
        for k, v in dict(
            name=name,
            task=task,
            max_seq_len=max_seq_len,
            default_dataset=default_dataset,
            title=title,
        ).items()
        if v is not None
    }
    if not directory.is_dir():
        raise ModelNotFound(
            "the model directory does not exist", path=directory, hint="check the path"
        )
    config = _read_json(directory / "config.json")
    if not config:
        raise ModelNotFound(
            "no config.json in the model directory",
            path=directory,
            hint="point at a Hugging Face model directory (save_pretrained output)",
        )
    if not any((directory / f).is_file() for f in WEIGHT_FILES):
        raise ModelNotFound(
            f"no weights in the model directory (looked for {' or '.join(WEIGHT_FILES)})",
            path=directory,
            hint="save the model with save_pretrained (safetensors is preferred)",
        )
    if config.get("auto_map"):
        raise ConfigError(
            "the checkpoint needs its own Python code (config.json has auto_map); Kiln does "
            "not run a checkpoint's code unless a card opts in",
            path=directory / "config.json",
            hint="if you trust its origin, write a card by hand with trust_remote_code: true",
        )
    model_type = config.get("model_type")
    if model_type not in FAMILIES:
        raise ConfigError(
            f"config.json's model_type is {model_type!r}; Kiln builds "
            f"{', '.join(FAMILIES)} (InfoXLM is xlm-roberta, chinese-roberta-wwm-ext is bert)",
            path=directory / "config.json",
            hint="use a checkpoint of one of those families",
        )
    family = get_family(model_type)
    notes = [f"family {model_type} from config.json's model_type"]
    questions: list[Question] = []
    labels, note = _labels(config)
    notes.append(note)
    if task is not None and task not in TASKS:
        raise ConfigError(f"unknown task {task!r}", hint=f"use one of: {', '.join(TASKS)}")
    found_task, note = _task(config, labels, task)
    if isinstance(found_task, Question):
        questions.append(found_task)
    else:
        notes.append(note)
    tokenizer_config = _read_json(directory / "tokenizer_config.json")
    found_len, note = _max_len(config, tokenizer_config, family, max_seq_len)
    if isinstance(found_len, Question):
        questions.append(found_len)
    else:
        notes.append(note)
    if name is not None and plain_card_name(name) != name:
        suggestion = plain_card_name(name)
        raise ConfigError(
            f"--name {name!r} is not a card name (lowercase letters, digits, '.', '_', '-')",
            hint=f"use --name {suggestion}" if suggestion else "use a name like my-model",
        )
    card_name = name or plain_card_name(directory.name)
    if not card_name:
        questions.append(
            Question(
                "name",
                "--name",
                "Name for the model card?",
                f"the directory name {directory.name!r} has no letters or digits to use",
            )
        )
    architectures = [a for a in config.get("architectures") or () if isinstance(a, str)]
    values: dict[str, Any] = {
        "name": card_name or "unnamed",
        "title": title or f"{card_name} ({architectures[0] if architectures else model_type})",
        "family": model_type,
        "task": found_task if isinstance(found_task, str) else "sequence-classification",
        "labels": list(labels),
        "max_seq_len": found_len if isinstance(found_len, int) else 512,
        "weights": {"source": "local", "path": str(directory)},
        "description": f"Read from {directory} by Kiln on {dt.date.today().isoformat()}: "
        + "; ".join(notes)
        + ".",
    }
    if isinstance(found_task, str):
        dataset = default_dataset or _default_dataset(found_task, labels)
        values["default_dataset"] = dataset or "none"
        if not dataset:
            notes.append("no built-in dataset of this task and label set: give --dataset-file")
        else:
            notes.append(f"default dataset {dataset}")
    architecture = _architecture(config, model_type, directory)
    if architecture:
        values["architecture"] = architecture
    return CardDraft(directory, values, tuple(notes), tuple(questions), given)


def card_from_directory(directory: Path | str) -> ModelCard:
    """The card for ``--model DIR``: inferred in memory, with the tokenizer checked."""
    from kiln_lab.core.models.loading import check_tokenizer_files

    draft = draft_card(directory)
    card = draft.card(
        how_to_answer=f"add it once with `kiln models add {draft.directory}` (it asks, or "
        "takes --task / --max-seq-len / --name), then run with --model NAME"
    )
    check_tokenizer_files(card, draft.directory)
    return card
