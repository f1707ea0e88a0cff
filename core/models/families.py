"""One small spec per model family, registered by name.

Subclasses override only what differs: RoBERTa and XLM-R have no token type ids and
offset their position ids past the padding index; XLM-R ships a sentencepiece
tokenizer. Everything that builds, exports or checks a model asks its family spec.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, ClassVar

from kiln_lab.core.errors import ConfigError

TASKS: tuple[str, ...] = (
    "token-classification",
    "sequence-classification",
    "sentence-pair-classification",
)


@dataclass(frozen=True)
class FamilySpec:
    """What Kiln needs to know about one architecture family."""

    name: ClassVar[str] = ""
    config_class_name: ClassVar[str] = ""
    has_token_type_ids: ClassVar[bool] = True
    offsets_positions: ClassVar[bool] = False
    """RoBERTa-style models number positions from ``padding_idx + 1``."""
    parity_atol: ClassVar[float] = 1e-3
    """Largest absolute logit difference that still passes fp32 parity."""

    @property
    def input_names(self) -> tuple[str, ...]:
        base = ("input_ids", "attention_mask")
        return (*base, "token_type_ids") if self.has_token_type_ids else base

    def config_class(self) -> Any:
        import transformers

        return getattr(transformers, self.config_class_name)

    def model_class(self, task: str) -> Any:
        import transformers

        if task == "token-classification":
            return transformers.AutoModelForTokenClassification
        if task in ("sequence-classification", "sentence-pair-classification"):
            return transformers.AutoModelForSequenceClassification
        raise ConfigError(f"unknown task {task!r}", hint=f"use one of: {', '.join(TASKS)}")

    def max_positions(self, seq_len: int, pad_token_id: int = 0) -> int:
        """``max_position_embeddings`` needed to hold ``seq_len`` tokens."""
        return seq_len + pad_token_id + 1 if self.offsets_positions else seq_len

    def build_config(
        self,
        *,
        labels: tuple[str, ...] | list[str],
        vocab_size: int,
        hidden_size: int,
        num_layers: int,
        num_heads: int,
        intermediate_size: int,
        max_seq_len: int,
        pad_token_id: int = 0,
        **extra: Any,
    ) -> Any:
        """A config of this family's architecture (for training, tests and perf-only runs)."""
        labels = list(labels)
        kwargs: dict[str, Any] = {
            "vocab_size": vocab_size,
            "hidden_size": hidden_size,
            "num_hidden_layers": num_layers,
            "num_attention_heads": num_heads,
            "intermediate_size": intermediate_size,
            "max_position_embeddings": self.max_positions(max_seq_len, pad_token_id),
            "pad_token_id": pad_token_id,
            "id2label": dict(enumerate(labels)),
            "label2id": {label: i for i, label in enumerate(labels)},
            "type_vocab_size": 2 if self.has_token_type_ids else 1,
        }
        kwargs.update(extra)
        return self.config_class()(**kwargs)


class BertSpec(FamilySpec):
    name = "bert"
    config_class_name = "BertConfig"


class RobertaSpec(FamilySpec):
    name = "roberta"
    config_class_name = "RobertaConfig"
    has_token_type_ids = False
    offsets_positions = True


class XLMRobertaSpec(RobertaSpec):
    name = "xlm-roberta"
    config_class_name = "XLMRobertaConfig"


FAMILIES: dict[str, FamilySpec] = {
    spec.name: spec for spec in (BertSpec(), RobertaSpec(), XLMRobertaSpec())
}


def get_family(name: str) -> FamilySpec:
    """Look up a family spec; an unknown name lists the known ones."""
    try:
        return FAMILIES[name]
    except KeyError:
        close = difflib.get_close_matches(name, FAMILIES, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(
            f"unknown model family {name!r}",
            hint=f"{hint}known families: {', '.join(sorted(FAMILIES))}",
        ) from None
