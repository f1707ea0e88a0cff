"""Faults in a model checkpoint: each ends in a KilnError that names the file to fix.

Every case copies a tiny checkpoint from ``tiny_assets`` into ``tmp_path``, damages it
the way it happens on lab machines (a copy cut short, a directory half-copied, a pickle
from somewhere else), and loads it through ``core.models.load_model`` as a run does,
or through ``core.stages.preflight``, the check the CLI makes before a run exists.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
from pathlib import Path

import pytest
import yaml

from kiln_lab.core.errors import (
    ConfigError,
    KilnError,
    LabelMismatch,
    ModelLoadError,
    ModelNotFound,
)
from kiln_lab.core.models import get_card, load_card_file
from kiln_lab.core.models.loading import load_model
from kiln_lab.core.runconfig import RunConfig
from kiln_lab.core.stages.resolve import preflight

SAMPLE_BIO = (
    Path(__file__).resolve().parent.parent / "data" / "datasets" / "peoples_daily_sample.bio"
)


def _config(**options: object) -> RunConfig:
    """A run on a small BIO file (no built-in dataset to derive)."""
    return RunConfig(
        model="tiny-ner-bert", dataset_file=str(SAMPLE_BIO), dataset_format="bio", **options
    )


@pytest.fixture
def checkpoint(tiny_assets: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny BERT NER checkpoint, safe to damage."""
    target = tmp_path / "checkpoint"
    shutil.copytree((tiny_assets / "models" / "tiny-ner-bert").resolve(), target)
    return target


def _load(path: Path, card_name: str = "tiny-ner-bert") -> KilnError:
    with pytest.raises(KilnError) as info:
        load_model(get_card(card_name), weights_dir=path)
    return info.value


def _card_copy(tmp_path: Path, **changes: object) -> Path:
    data = yaml.safe_load(Path(get_card("tiny-ner-bert").card_path).read_text())
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump({**data, **changes}, sort_keys=False))
    return path


@pytest.mark.parametrize("keep", [0.5, 0.999, 20 / 1e9])
def test_truncated_safetensors_names_the_file(checkpoint: Path, keep: float) -> None:
    weights = checkpoint / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: max(1, int(len(data) * keep))])
    err = _load(checkpoint)
    assert isinstance(err, ModelLoadError)
    assert err.path == str(weights)
    assert "truncated or damaged" in err.message and "copy the file again" in err.hint


def test_garbage_safetensors_names_the_file(checkpoint: Path) -> None:
    weights = checkpoint / "model.safetensors"
    weights.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}" + b"\0" * 64)
    err = _load(checkpoint)
    assert isinstance(err, ModelLoadError) and err.path == str(weights)


@pytest.mark.parametrize(
    "removed", [("tokenizer.json",), ("tokenizer.json", "tokenizer_config.json")]
)
def test_missing_tokenizer_names_directory_and_files(
    checkpoint: Path, removed: tuple[str, ...]
) -> None:
    """Without these files transformers builds a 5-token vocabulary silently (every
    character [UNK]); Kiln refuses instead."""
    for name in removed:
        (checkpoint / name).unlink()
    err = _load(checkpoint)
    assert isinstance(err, ModelLoadError)
    assert err.path == str(checkpoint)
    assert "tokenizer.json" in err.message and "vocab.txt" in err.message
    assert "save_pretrained" in err.hint


def test_missing_config_json_is_named_before_the_run(checkpoint: Path, kiln_home: Path) -> None:
    (checkpoint / "config.json").unlink()
    with pytest.raises(ModelNotFound) as info:
        preflight(_config(weights=str(checkpoint)))
    assert info.value.path == str(checkpoint)
    assert "config.json" in info.value.message and "model.safetensors" not in info.value.message


def test_missing_weights_file_is_named(checkpoint: Path, kiln_home: Path) -> None:
    (checkpoint / "model.safetensors").unlink()
    with pytest.raises(ModelNotFound) as info:
        preflight(_config(weights=str(checkpoint)))
    assert "model.safetensors" in info.value.message and "config.json" not in info.value.message


def test_unparseable_config_json(checkpoint: Path) -> None:
    (checkpoint / "config.json").write_text('{"model_type": "bert", ')
    err = _load(checkpoint)
    assert isinstance(err, ModelLoadError) and "config.json" in err.message


def test_checkpoint_labels_differ_from_the_card(checkpoint: Path, tmp_path: Path) -> None:
    config = json.loads((checkpoint / "config.json").read_text())
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    labels[1], labels[3] = labels[3], labels[1]
    config["id2label"] = {str(i): name for i, name in enumerate(labels)}
    config["label2id"] = {name: i for i, name in enumerate(labels)}
    (checkpoint / "config.json").write_text(json.dumps(config))
    err = _load(checkpoint)
    assert isinstance(err, LabelMismatch)
    assert err.path == str(checkpoint / "config.json")
    assert "in order" in err.hint


def test_card_sequence_longer_than_the_checkpoint_positions(
    checkpoint: Path, tmp_path: Path
) -> None:
    """A card claiming 512 tokens on a 128-position model would index past the
    embeddings mid-run; it is refused at load, naming the card and config.json."""
    card = load_card_file(_card_copy(tmp_path, max_seq_len=512))
    with pytest.raises(ConfigError) as info:
        load_model(card, weights_dir=checkpoint)
    assert info.value.path == card.card_path
    assert "128 positions" in info.value.message and "config.json" in info.value.message
    assert "max_seq_len: 128" in info.value.hint


def _state_dict(checkpoint: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(checkpoint / "model.safetensors")


def test_pytorch_model_bin_loads_as_tensors_only_with_a_warning(
    checkpoint: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import torch

    torch.save(_state_dict(checkpoint), checkpoint / "pytorch_model.bin")
    (checkpoint / "model.safetensors").unlink()
    with caplog.at_level(logging.WARNING, logger="kiln_lab.core.models.loading"):
        loaded = load_model(get_card("tiny-ner-bert"), weights_dir=checkpoint)
    assert loaded.weights_dir == checkpoint
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "pytorch_model.bin is a pickle" in warning and "weights_only=True" in warning


class _Payload:
    """Unpickling this creates a directory: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.mkdir, (str(self.marker),))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("container", ["torch.save", "raw pickle"])
def test_malicious_pickle_is_refused_not_run(
    checkpoint: Path, tmp_path: Path, container: str
) -> None:
    import torch

    marker = tmp_path / "code-ran"
    payload = {**_state_dict(checkpoint), "evil": _Payload(marker)}
    weights = checkpoint / "pytorch_model.bin"
    if container == "torch.save":
        torch.save(payload, weights)
    else:
        weights.write_bytes(pickle.dumps(payload))
    (checkpoint / "model.safetensors").unlink()
    err = _load(checkpoint)
    assert not marker.exists(), "loading the checkpoint ran code from its pickle"
    assert isinstance(err, ModelLoadError) and err.path == str(weights)
    assert "weights_only=True" in err.message and "refused" in err.message
    # The payload is live: a plain unpickling does run it (so the test proves something).
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()
