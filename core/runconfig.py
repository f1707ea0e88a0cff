"""What an operator asks for: one run's choices, validated before any work starts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from core.errors import ConfigError

PADDINGS = ("bucket", "fixed")
SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class RunConfig:
    """A run = model card + dataset + profile + precision + options."""

    model: str
    profile: str = "cpu-onnxruntime"
    precision: str = "fp32"
    dataset: str | None = None
    """A built-in dataset name; None means the card's default dataset."""
    dataset_file: str | None = None
    dataset_format: str | None = None
    split: str = "test"
    batch_size: int | None = None
    """None: the profile's default."""
    seq_len: int | None = None
    """None: the profile's default, else the card's max_seq_len."""
    limit: int | None = None
    """Evaluate only the first N examples (quick looks, tests)."""
    perf_only: bool = False
    weights: str | None = None
    parity_samples: int = 32
    padding: str = "bucket"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dataset and self.dataset_file:
            raise ConfigError("give either a dataset or a dataset file, not both")
        if self.dataset_file and not self.dataset_format:
            raise ConfigError(
                "a dataset file needs its format",
                hint="add --format bio|tsv|xnli",
            )
        if self.split not in SPLITS:
            raise ConfigError(f"unknown split {self.split!r}", hint=f"use one of {SPLITS}")
        if self.padding not in PADDINGS:
            raise ConfigError(f"unknown padding {self.padding!r}", hint=f"use one of {PADDINGS}")
        for name in ("batch_size", "seq_len", "limit", "parity_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be at least 1, got {value}")

    @property
    def dataset_label(self) -> str:
        if self.dataset_file:
            return self.dataset_file
        return f"{self.dataset or '(card default)'}:{self.split}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["dataset_label"] = self.dataset_label
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)
