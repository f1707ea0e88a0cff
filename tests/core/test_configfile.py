"""Profiles and cards: typed, strict, and every mistake named with file, line and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln_lab.core.errors import ConfigError, ToolchainMissing
from kiln_lab.core.models import get_card, list_cards, load_card_file
from kiln_lab.core.models.families import FAMILIES, get_family
from kiln_lab.core.profiles import (
    check_availability,
    list_profiles,
    load_profile_file,
    require_available,
)

DATA = Path(__file__).resolve().parent.parent / "data"


def test_shipped_profiles_and_cards_load() -> None:
    assert {"cpu-torch", "cpu-onnxruntime"} <= {p.name for p in list_profiles()}
    names = {c.name for c in list_cards()}
    assert {
        "bert-base-chinese-ner",
        "xlm-roberta-base-ner",
        "roberta-base-sst2",
        "chinese-roberta-wwm-ext-chnsenticorp",
        "infoxlm-base-xnli",
    } <= names


def test_seed_cards_carry_the_published_figures() -> None:
    xlmr = get_card("xlm-roberta-base-ner")
    assert xlmr.reference_for("entity_f1", "fp32").value == pytest.approx(0.7658)
    assert xlmr.reference_for("entity_f1", "int8").value == pytest.approx(0.0914)
    assert get_card("roberta-base-sst2").reference_for("accuracy").value == pytest.approx(0.948)


def test_profile_key_typo_names_file_line_and_nearest_key() -> None:
    with pytest.raises(ConfigError) as info:
        load_profile_file(DATA / "profiles" / "typo-key.yaml")
    err = info.value
    assert err.path.endswith("typo-key.yaml") and err.line == 6
    assert "defaults.batch_sise" in err.message
    assert "batch_size" in err.hint


def test_profile_wrong_type_names_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        load_profile_file(DATA / "profiles" / "wrong-type.yaml")
    assert "defaults.batch_size" in info.value.message and info.value.line == 6
    assert "'lots'" in info.value.message


def test_unknown_runtime_lists_the_choices() -> None:
    with pytest.raises(ConfigError) as info:
        load_profile_file(DATA / "profiles" / "unknown-runtime.yaml")
    assert "runtime" in info.value.message and "onnxruntime" in info.value.message


def test_absent_toolchain_is_unavailable_with_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    profile = load_profile_file(DATA / "profiles" / "missing-tool.yaml")
    status = check_availability(profile)
    assert not status.available
    assert "definitely-not-a-kiln-tool" in status.reason
    assert status.fix == "source /opt/vendor/set_env.sh"
    with pytest.raises(ToolchainMissing, match="cannot run here"):
        require_available(profile)


def test_card_errors() -> None:
    with pytest.raises(ConfigError) as info:
        load_card_file(DATA / "cards" / "typo-family.yaml")
    assert "did you mean 'bert'" in info.value.message and info.value.line == 3
    with pytest.raises(ConfigError) as info:
        load_card_file(DATA / "cards" / "typo-key.yaml")
    assert "default_datset" in info.value.message and "default_dataset" in info.value.hint
    with pytest.raises(ConfigError) as info:
        load_card_file(DATA / "cards" / "bad-yaml.yaml")
    assert "not valid YAML" in info.value.message and info.value.line is not None


def test_unknown_names_suggest() -> None:
    with pytest.raises(ConfigError, match="did you mean 'cpu-torch'"):
        from kiln_lab.core.profiles import get_profile

        get_profile("cpu-torhc")
    with pytest.raises(ConfigError, match="known families"):
        get_family("gpt")
    assert set(FAMILIES) == {"bert", "roberta", "xlm-roberta"}
