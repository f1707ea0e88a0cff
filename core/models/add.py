"""Adding an operator's own model: a quick parity check, then its card in ``KILN_HOME``.

The check is the verify stage's comparison on synthetic inputs: the checkpoint is
loaded the way a run loads it (labels, positions, tokenizer and weights all checked),
exported to ONNX (into the artifact cache, where the model's first run finds it) and
run in ONNX Runtime beside PyTorch. A model that loads but does not export faithfully
is caught before it gets a card. The card goes to ``KILN_HOME/cards`` (never into the
checkout or an installed package), where ``get_card`` finds it by name.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml

from kiln_lab.core.errors import ConfigError, ParityError
from kiln_lab.core.models.cards import ModelCard, cards_dir, load_card_file, user_cards_dir

if TYPE_CHECKING:
    from kiln_lab.core.encode import PaddedBatch
    from kiln_lab.core.parity import ParityReport

log = logging.getLogger(__name__)

CHECK_SAMPLES = 8
CHECK_SEQ_LEN = 32


def synthetic_batches(
    tokenizer: object,
    input_names: tuple[str, ...],
    *,
    samples: int = CHECK_SAMPLES,
    seq_len: int = CHECK_SEQ_LEN,
    seed: int = 0,
) -> list[PaddedBatch]:
    """Two padded batches of random ordinary tokens between the tokenizer's own start
    and end tokens, of varied lengths (so padding and masks are exercised too)."""
    from kiln_lab.core.encode import PaddedBatch

    rng = np.random.default_rng(seed)
    special = set(getattr(tokenizer, "all_special_ids", ()) or ())
    vocab = len(tokenizer)  # type: ignore[arg-type]
    ordinary = np.array([i for i in range(vocab) if i not in special], dtype=np.int64)
    if ordinary.size == 0:
        raise ConfigError("the tokenizer has no ordinary tokens", hint="check its vocabulary")
    start = getattr(tokenizer, "cls_token_id", None)
    if start is None:
        start = getattr(tokenizer, "bos_token_id", None)
    end = getattr(tokenizer, "sep_token_id", None)
    if end is None:
        end = getattr(tokenizer, "eos_token_id", None)
    pad = getattr(tokenizer, "pad_token_id", None) or 0
    lengths = rng.integers(4, seq_len + 1, size=samples)
    lengths[0] = seq_len
    batches = []
    half = max(1, samples // 2)
    for first in range(0, samples, half):
        rows = list(range(first, min(first + half, samples)))
        width = int(max(lengths[r] for r in rows))
        ids = np.full((len(rows), width), pad, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            length = int(lengths[r])
            ids[i, :length] = rng.choice(ordinary, size=length)
            if start is not None:
                ids[i, 0] = start
            if end is not None:
                ids[i, length - 1] = end
            mask[i, :length] = 1
        arrays = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in input_names:
            arrays["token_type_ids"] = np.zeros_like(ids)
        real = int(mask.sum())
        batches.append(PaddedBatch(tuple(rows), arrays, real, ids.size))
    return batches


def quick_parity(card: ModelCard, *, samples: int = CHECK_SAMPLES) -> ParityReport:
    """The checkpoint exported to ONNX and compared with PyTorch on synthetic inputs;
    ``ParityError`` when they disagree (the report is returned otherwise, warn included)."""
    from kiln_lab.core.export import export_onnx
    from kiln_lab.core.models.loading import load_model
    from kiln_lab.core.parity import compare
    from kiln_lab.core.runtimes.onnxruntime import OnnxRuntimeModel
    from kiln_lab.core.runtimes.torch import TorchModel

    loaded = load_model(card)
    family = loaded.family
    names = family.input_names
    onnx, _ = export_onnx(loaded, input_names=names, weights_sha256=loaded.weights_sha256)
    batches = synthetic_batches(
        loaded.tokenizer,
        names,
        samples=samples,
        seq_len=min(CHECK_SEQ_LEN, card.max_seq_len),
    )
    report = compare(
        TorchModel(loaded.model, names),
        OnnxRuntimeModel(onnx),
        batches,
        token_level=card.task == "token-classification",
        tolerance=family.parity_atol,
    )
    if report.status == "fail":
        raise ParityError(
            f"the ONNX export of {loaded.weights_dir} disagrees with PyTorch on "
            f"{report.samples} synthetic inputs: max |Δlogit| {report.max_abs_diff:.2e} "
            f"(tolerance {report.tolerance:.1e}), agreement {report.agreement:.4f}",
            path=loaded.weights_dir,
            hint="check that config.json's model_type matches the weights; "
            "`kiln models add --no-check` adds it anyway",
        )
    return report


def card_yaml(card: ModelCard, notes: tuple[str, ...] = ()) -> str:
    """The card as YAML, in the schema of ``assets/cards``, with how it was read on top."""
    data = card.model_dump(mode="json", exclude_none=True, exclude={"card_path"})
    for key in ("reference", "languages"):
        if not data.get(key):
            data.pop(key, None)
    if data.get("description") == "":
        data.pop("description")
    if data.get("trust_remote_code") is False:
        data.pop("trust_remote_code")
    head = ["# Added by `kiln models add`; edit freely (kiln models shows it)."]
    head += [f"# {note}" for note in notes]
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return "\n".join(head) + "\n" + text


def write_user_card(card: ModelCard, *, notes: tuple[str, ...] = (), replace: bool = False) -> Path:
    """Write ``card`` to ``KILN_HOME/cards/<name>.yaml``, checked by loading it back."""
    if (cards_dir() / f"{card.name}.yaml").exists() or card.name in _builtin_names():
        raise ConfigError(
            f"'{card.name}' is the name of a built-in model card",
            hint="pick another name with --name",
        )
    folder = user_cards_dir()
    if folder is None:
        raise ConfigError("KILN_HOME cannot be used", hint="set KILN_HOME to a writable directory")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{card.name}.yaml"
    if path.exists() and not replace:
        raise ConfigError(
            f"a model card named '{card.name}' exists already",
            path=path,
            hint="pick another name with --name, or add --replace to overwrite it",
        )
    tmp = folder / f".{card.name}.yaml.tmp"
    try:
        tmp.write_text(card_yaml(card, notes), encoding="utf-8")
        load_card_file(tmp)  # a card the schema would refuse is never put in place
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _builtin_names() -> set[str]:
    names = set()
    for file in cards_dir().glob("*.yaml"):
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            names.add(data["name"])
    return names
