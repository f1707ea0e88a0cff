"""Training (``core.training``): the vocabulary rule, the batching, a one-minute retrain.

The ``kiln finetune`` command line over it is tested in ``tests/tui/test_finetune_command.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kiln_lab.core.errors import ConfigError
from kiln_lab.core.training import (
    SPECIAL_TOKENS,
    build_tokenizer,
    build_vocabulary,
    epoch_order,
    get_recipe,
    train,
)

TINY = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64}


def test_vocabulary_keeps_specials_ascii_and_frequent_characters() -> None:
    texts = ["我爱北京", "北京欢迎你", ("北", "京"), "罕  \u3000\u3000\x07\x07"]
    vocab = build_vocabulary(texts, min_frequency=2)
    assert tuple(vocab[:5]) == SPECIAL_TOKENS
    assert vocab[5:15] == list("0123456789")
    assert {"a", "Z", "##a", "##7"} <= set(vocab)
    chinese = [t for t in vocab[5:] if not t.isascii() and not t.startswith("##")]
    assert chinese == ["京", "北"]  # by count (3 each), then code point; 我/罕 are too rare
    assert " " not in vocab and "\x07" not in vocab and "\u3000" not in vocab
    assert "##北" not in vocab  # Chinese characters are always split, never continued
    assert len(vocab) == len(set(vocab))
    assert build_vocabulary(texts, min_frequency=2) == vocab  # deterministic


def test_tokenizer_splits_chinese_and_keeps_ascii_runs_known() -> None:
    vocab = build_vocabulary(["北京151块", "北京iPhone块"], min_frequency=1)
    tokenizer = build_tokenizer(vocab, max_seq_len=32)
    assert tokenizer.tokenize("北京151块") == ["北", "京", "1", "##5", "##1", "块"]
    assert tokenizer.unk_token_id not in tokenizer("iPhone 北京")["input_ids"]
    assert tokenizer.pad_token_id == 0


def test_epoch_order_covers_every_example_once_in_length_buckets() -> None:
    lengths = np.random.default_rng(1).integers(3, 120, size=1000)
    batches = epoch_order(lengths, 8, np.random.default_rng(0))
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
    assert spread < 10  # sorted within chunks: little padding
    again = epoch_order(lengths, 8, np.random.default_rng(0))
    assert all((a == b).all() for a, b in zip(batches, again, strict=True))


def test_unknown_recipe_and_bad_sizes_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="zh-ner-tiny"):
        get_recipe("zh-ner-tin")
    with pytest.raises(ConfigError, match="multiple of"):
        get_recipe("zh-ner-tiny").with_changes(hidden_size=30, num_heads=4)


def test_one_minute_retrain_round_trips_and_records_its_training(
    kiln_home: Path, tmp_path: Path
) -> None:
    from kiln_lab.core.models import load_card_file, load_model

    recipe = get_recipe("zh-ner-tiny").with_changes(**TINY, epochs=3, learning_rate=2e-3)
    out, cards = tmp_path / "model", tmp_path / "cards"
    phases: list[str] = []
    report = train(
        recipe,
        out,
        cards_dir=cards,
        limit_train=300,
        limit_eval=300,
        max_minutes=0.5,
        threads=1,  # shared CI machines: 2 threads under contention can be 5x slower
        progress=lambda p: phases.append(p.phase),
    )
    assert report.loss_end < report.loss_start
    assert {"prepare", "train", "evaluate dev", "evaluate test", "save"} <= set(phases)
    assert report.dev["token_accuracy"] > 0.8  # 'O' alone is ~90%: it learned that much

    card = load_card_file(cards / "zh-ner-tiny.yaml")
    assert card.weights.source == "local" and Path(card.weights.path) == out.resolve()
    assert card.architecture is not None and card.architecture.hidden_size == 32
    loaded = load_model(card, weights_dir=out)
    assert loaded.model.config.num_hidden_layers == 2
    assert tuple(loaded.model.config.id2label[i] for i in range(len(card.labels))) == card.labels
    assert loaded.tokenizer.tokenize("北京") == ["北", "京"]
    assert (out / "vocab.txt").is_file() and (out / "model.safetensors").is_file()

    record = card.training
    assert record is not None
    for key in ("command", "seed", "data", "training_time_s", "epochs", "dev", "test"):
        assert key in record, key
    assert record["command"].startswith("kiln finetune zh-ner-tiny")
    assert set(record["data"]["hashes"]) == {"train", "dev", "test"}
    assert record["limits"]["limit_train"] == 300
    assert record["parameters"] == report.parameters
    assert {"torch", "transformers"} <= set(record["versions"])
    figure = card.reference_for("entity_f1")
    assert figure is not None and figure.value == round(report.test["entity_f1"], 4)
