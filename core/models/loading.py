"""Find and load a card's weights, from local files only.

Kiln never downloads at run time. It looks in a fixed list of places, in order, and
when nothing is there it says every place it looked and how to put weights there.
A performance-only run builds the card's architecture with random weights instead,
and says so everywhere a figure would otherwise be read as accuracy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import pickle
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiln_lab.core.errors import (
    ConfigError,
    KilnError,
    LabelMismatch,
    ModelLoadError,
    ModelNotFound,
)
from kiln_lab.core.models.cards import ModelCard
from kiln_lab.core.models.families import get_family
from kiln_lab.core.paths import assets_dir, kiln_home

log = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass
class LoadedModel:
    """A checkpoint ready to run in PyTorch fp32: the reference every artifact is
    checked against.

    The PyTorch model itself is built on first use of :attr:`model`: importing torch and
    transformers' modeling code and reading the weights is most of a small run's fixed
    cost, and a run whose exports are cached and whose parity was already checked never
    needs it. The config, tokenizer and weights hash are read at once (they key the
    caches and encode the data).
    """

    card: ModelCard
    tokenizer: Any
    perf_only: bool
    weights_dir: Path | None
    weights_sha256: str
    config: Any
    """The transformers config: the architecture, without building the model."""
    loader: Callable[[], Any] = field(repr=False, default=lambda: None)
    notes: list[str] = field(default_factory=list)
    _model: Any = field(default=None, repr=False)

    @property
    def model(self) -> Any:
        """The PyTorch model, built (weights read) on first use."""
        if self._model is None:
            started = time.perf_counter()
            self._model = self.loader()
            log.info(
                "PyTorch model of %s built in %.2f s", self.card.name, time.perf_counter() - started
            )
        return self._model

    @property
    def model_built(self) -> bool:
        return self._model is not None

    @property
    def parameters(self) -> int | None:
        """Parameter count: from the built model, else the safetensors header (shapes
        only, no tensors read); None for a random-weights model not built yet."""
        if self._model is not None:
            return int(sum(p.numel() for p in self._model.parameters()))
        weights = self.weights_dir / "model.safetensors" if self.weights_dir else None
        if weights is None or not weights.is_file():
            return None
        from safetensors import safe_open

        total = 0
        with safe_open(str(weights), framework="numpy") as handle:
            for name in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                count = 1
                for size in handle.get_slice(name).get_shape():
                    count *= size
                total += count
        return total

    @property
    def family(self) -> Any:
        return get_family(self.card.family)


def candidate_dirs(card: ModelCard, override: Path | None = None) -> list[tuple[str, Path]]:
    """Every place Kiln looks for a card's weights, in order, with a label for messages."""
    places: list[tuple[str, Path]] = []
    if override is not None:
        places.append(("--weights", Path(override).expanduser()))
    if card.weights.source == "builtin" and card.weights.path:
        places.append(("built-in asset", assets_dir() / "models" / card.weights.path))
    if card.weights.source == "local" and card.weights.path:
        places.append(("card weights.path", Path(card.weights.path).expanduser()))
    env_name = "KILN_WEIGHTS_" + card.name.upper().replace("-", "_").replace(".", "_")
    if os.environ.get(env_name):
        places.append((f"${env_name}", Path(os.environ[env_name]).expanduser()))
    places.append(("KILN_HOME models", kiln_home() / "models" / card.name))
    return places


def _hf_cache_dir(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - any failure means "not in the cache"
        return None


def _has_weights(path: Path) -> bool:
    return (path / "config.json").is_file() and any((path / f).is_file() for f in WEIGHT_FILES)


def locate_weights(card: ModelCard, override: Path | None = None) -> Path:
    """The first directory that holds the card's weights, or ``ModelNotFound``."""
    if override is not None:
        override = Path(override).expanduser()
        if not _has_weights(override):
            absent = [] if (override / "config.json").is_file() else ["config.json"]
            if not any((override / f).is_file() for f in WEIGHT_FILES):
                absent.append("model.safetensors (or pytorch_model.bin)")
            missing = (
                "does not exist" if not override.exists() else f"has no {' and no '.join(absent)}"
            )
            raise ModelNotFound(
                f"the --weights directory {missing}",
                path=override,
                hint="point --weights at a Hugging Face model directory (save_pretrained output)",
            )
        return override
    searched: list[str] = []
    for label, path in candidate_dirs(card, override):
        if _has_weights(path):
            return path
        searched.append(f"{label}: {path}")
    if card.weights.repo_id:
        found = _hf_cache_dir(card.weights.repo_id)
        if found is not None and _has_weights(found):
            return found
        searched.append(f"Hugging Face cache: {card.weights.repo_id} (local files only)")
    env_name = "KILN_WEIGHTS_" + card.name.upper().replace("-", "_").replace(".", "_")
    raise ModelNotFound(
        f"no weights for '{card.name}' (a directory with config.json and model.safetensors); "
        f"searched: {'; '.join(searched)}",
        path=card.card_path,
        hint=f"pass --weights DIR, set {env_name}=DIR, copy a fine-tuned Hugging Face "
        f"directory to {kiln_home() / 'models' / card.name}, or add --perf-only to measure "
        "speed with random weights",
    )


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    for name in sorted(p.name for p in path.iterdir() if p.is_file()):
        if name.endswith((".safetensors", ".bin", ".json", ".txt", ".model")):
            digest.update(name.encode())
            with open(path / name, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()


def check_labels(card: ModelCard, config: Any, where: Path) -> None:
    """The checkpoint's label set must be the card's, in the same order."""
    id2label = getattr(config, "id2label", None) or {}
    found = tuple(id2label[i] for i in sorted(id2label))
    if found != card.labels:
        raise LabelMismatch(
            f"the checkpoint's labels {list(found)} differ from the card's {list(card.labels)}",
            path=where / "config.json",
            hint="fix id2label in the checkpoint's config.json or the card's labels so "
            "they match, in order",
        )


TOKENIZER_FILES: dict[str, tuple[tuple[str, ...], ...]] = {
    "bert": (("tokenizer.json",), ("vocab.txt",)),
    "roberta": (("tokenizer.json",), ("vocab.json", "merges.txt")),
    "xlm-roberta": (("tokenizer.json",), ("sentencepiece.bpe.model",)),
}
"""Each family's usual tokenizer files (any one set is a complete tokenizer)."""
OTHER_TOKENIZER_FILES = (("spiece.model",), ("tokenizer.model",))


def check_tokenizer_files(card: ModelCard, path: Path) -> None:
    """The checkpoint must ship its tokenizer: without one, transformers builds an empty
    vocabulary silently and every character becomes [UNK].

    Any known complete set is accepted, whatever the family (a RoBERTa-trained checkpoint
    may well ship BERT's vocab.txt); the message names the family's usual files.
    """
    known = {files for sets in TOKENIZER_FILES.values() for files in sets}
    if any(all((path / n).is_file() for n in files) for files in (*known, *OTHER_TOKENIZER_FILES)):
        return
    choices = TOKENIZER_FILES.get(card.family, (("tokenizer.json",),))
    wanted = " or ".join(" + ".join(files) for files in choices)
    raise ModelLoadError(
        f"no tokenizer in the checkpoint directory: missing {wanted}",
        path=path,
        hint="copy the tokenizer files saved with the model (tokenizer.save_pretrained(DIR)) "
        "into this directory",
    )


def check_weights_file(path: Path) -> Path:
    """The weights file that will be read; a truncated ``model.safetensors`` is named.

    A safetensors file is an 8-byte header length, a JSON header giving every tensor's
    byte range, then the data: a copy cut short (a full disk, an interrupted ``scp``) is
    caught here from the header alone, before transformers reports it obscurely.
    """
    file = path / "model.safetensors"
    if not file.is_file():
        return path / "pytorch_model.bin"
    size = file.stat().st_size
    problem = None
    try:
        with open(file, "rb") as fh:
            head = fh.read(8)
            length = int.from_bytes(head, "little") if len(head) == 8 else -1
            if length < 2 or 8 + length > size:
                problem = f"its header is cut short ({size} bytes in all)"
            else:
                header = json.loads(fh.read(length))
                ends = [
                    int(v["data_offsets"][1])
                    for k, v in header.items()
                    if k != "__metadata__" and isinstance(v, dict)
                ]
                needed = 8 + length + max(ends, default=0)
                if needed > size:
                    problem = f"it holds {size} bytes but its header describes {needed}"
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        problem = f"its header cannot be read ({type(exc).__name__})"
    if problem:
        raise ModelLoadError(
            f"model.safetensors is truncated or damaged: {problem}",
            path=file,
            hint="copy the file again from its source and compare sizes (or sha256)",
        )
    return file


def check_positions(card: ModelCard, config: Any, where: Path) -> None:
    """The card's max_seq_len must fit the checkpoint's position embeddings."""
    total = getattr(config, "max_position_embeddings", None)
    if not isinstance(total, int):
        return
    family = get_family(card.family)
    usable = total - (int(config.pad_token_id or 0) + 1 if family.offsets_positions else 0)
    if card.max_seq_len > usable:
        raise ConfigError(
            f"max_seq_len {card.max_seq_len} is longer than the checkpoint's {usable} "
            f"positions (max_position_embeddings {total} in {where / 'config.json'})",
            path=card.card_path,
            hint=f"set max_seq_len: {usable} (or less) in the card",
        )


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _is_refused_pickle(exc: BaseException) -> bool:
    return any(isinstance(e, pickle.UnpicklingError) for e in _chain(exc))


def _about_weights(exc: BaseException) -> bool:
    """Whether a loading error came from reading the weights file itself."""
    return any("safetensor" in type(e).__name__.lower() for e in _chain(exc))


def load_model(
    card: ModelCard, *, weights_dir: Path | None = None, perf_only: bool = False
) -> LoadedModel:
    """Config, tokenizer and (on first use) the fp32 model for ``card`` (eager attention,
    so exports fuse). A pickle checkpoint is loaded at once, so a refused one is said here."""
    family = get_family(card.family)
    if perf_only:
        return _random_model(card)
    path = locate_weights(card, weights_dir)
    if card.trust_remote_code:
        log.warning(
            "card %s opts in to trust_remote_code: the checkpoint's code will run", card.name
        )
    check_tokenizer_files(card, path)
    weights_file = check_weights_file(path)
    if weights_file.suffix == ".bin":
        log.warning(
            "%s is a pickle: loading it with weights_only=True (tensors only, no code); "
            "convert it to model.safetensors",
            weights_file,
        )

    def build() -> Any:
        import torch

        with _translated(path, weights_file):
            model = family.model_class(card.task).from_pretrained(
                path,
                local_files_only=True,
                trust_remote_code=card.trust_remote_code,
                attn_implementation="eager",
                dtype=torch.float32,
                weights_only=True,
            )
        model.eval()
        return model

    with _translated(path, weights_file):
        config: Any = CheckpointConfig(path, trust_remote_code=card.trust_remote_code)
        if card.trust_remote_code:
            config = config.full  # a custom config class: transformers' own reading only
        check_labels(card, config, path)
        check_positions(card, config, path)
        if weights_file.suffix == ".safetensors":
            _check_safetensors(weights_file)
        tokenizer = _tokenizer(path, card)
    loaded = LoadedModel(card, tokenizer, False, path, _sha256_of(path), config, build)
    if weights_file.suffix != ".safetensors":
        loaded.model  # noqa: B018 - a pickle is read at once: a refused one is said in load
    return loaded


class CheckpointConfig:
    """A checkpoint's ``config.json`` as written: the architecture without torch.

    transformers' config classes import torch (about a second, and most of a cached
    run's start-up), while Kiln mostly needs a few numbers (hidden size, heads, layers,
    vocabulary, labels). Keys in the file are read from it, ``id2label`` with integer
    keys as transformers makes them; anything else is asked of transformers' own config,
    built on first need, so a default the file leaves out is still right.
    """

    def __init__(self, path: Path, *, trust_remote_code: bool = False) -> None:
        self._path = path
        self._trust = trust_remote_code
        self._full: Any = None
        where = path / "config.json"
        try:
            raw = json.loads(where.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"could not read {where}: {exc}",
                path=where,
                hint="config.json must be the JSON file saved with the model "
                "(model.save_pretrained(DIR) writes it)",
            ) from None
        if not isinstance(raw, dict):
            raise ModelLoadError(
                f"{where} is not a JSON object", path=where, hint="restore the saved config.json"
            )
        self._raw: dict[str, Any] = raw

    def __getattr__(self, name: str) -> Any:
        raw = self.__dict__.get("_raw", {})
        if name in raw:
            value = raw[name]
            if name == "id2label" and isinstance(value, dict):
                return {int(k): v for k, v in value.items()}
            return value
        if name.startswith("__") or "_raw" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.full, name)

    @property
    def full(self) -> Any:
        """transformers' config object (imports torch), built once."""
        if self._full is None:
            from transformers import AutoConfig

            self._full = AutoConfig.from_pretrained(
                self._path, local_files_only=True, trust_remote_code=self._trust
            )
        return self._full

    def to_json_string(self, use_diff: bool = True) -> str:
        """The file's own content, sorted: keys the export cache (not transformers'
        serialisation with every default, which would import torch)."""
        return json.dumps(self._raw, sort_keys=True)


def _tokenizer(path: Path, card: ModelCard) -> Any:
    """The class ``tokenizer_config.json`` names, imported alone (``AutoTokenizer``
    imports transformers' config machinery, and with it torch); AutoTokenizer when the
    file names none or a class transformers does not have."""
    import transformers

    named = None
    config_file = path / "tokenizer_config.json"
    if config_file.is_file() and not card.trust_remote_code:
        named = json.loads(config_file.read_text("utf-8")).get("tokenizer_class")
    cls = getattr(transformers, named, None) if isinstance(named, str) else None
    if cls is None:
        cls = transformers.AutoTokenizer
    return cls.from_pretrained(
        path, local_files_only=True, trust_remote_code=card.trust_remote_code
    )


def _check_safetensors(weights_file: Path) -> None:
    """Read the safetensors header (not the tensors): a damaged file is said in load."""
    from safetensors import safe_open

    with safe_open(str(weights_file), framework="numpy") as handle:
        handle.keys()


@contextlib.contextmanager
def _translated(path: Path, weights_file: Path) -> Iterator[None]:
    """Any failure reading the checkpoint as one ``ModelLoadError`` naming the file."""
    try:
        yield
    except KilnError:
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors, pickle and HF raise their own kinds
        if _is_refused_pickle(exc):
            raise ModelLoadError(
                f"{weights_file.name} holds more than tensors: a pickle that would run code "
                "when loaded. Kiln loads pickles with weights_only=True, so it was refused",
                path=weights_file,
                hint="use a model.safetensors copy of the weights, or convert this file where "
                "you trust its origin",
            ) from exc
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        named = weights_file if _about_weights(exc) else path
        raise ModelLoadError(
            f"could not load the checkpoint in {path}: {first}",
            path=named,
            hint="check that the directory holds a complete Hugging Face checkpoint "
            "(config.json, model.safetensors, tokenizer files)",
        ) from exc


def _random_model(card: ModelCard) -> LoadedModel:
    """The card's architecture with seeded random weights: for speed figures only."""
    from kiln_lab.core.models.perf_tokenizer import perf_tokenizer_for

    family = get_family(card.family)
    tokenizer, arch = perf_tokenizer_for(card)
    config = family.build_config(
        labels=card.labels,
        vocab_size=arch["vocab_size"],
        hidden_size=arch["hidden_size"],
        num_layers=arch["num_layers"],
        num_heads=arch["num_heads"],
        intermediate_size=arch["intermediate_size"],
        max_seq_len=card.max_seq_len,
        pad_token_id=tokenizer.pad_token_id,
    )
    config._attn_implementation = "eager"

    def build() -> Any:
        import torch

        torch.manual_seed(0)
        model = family.model_class(card.task).from_config(config, attn_implementation="eager")
        model.eval()
        return model

    note = (
        "performance-only: random weights of the card's architecture; accuracy figures "
        "are unavailable"
    )
    log.warning(note)
    return LoadedModel(card, tokenizer, True, None, "random-seed-0", config, build, [note])
