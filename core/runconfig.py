"""What an operator asks for: one run's choices, validated before any work starts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, get_args

from kiln_lab.core.errors import ConfigError

AUTO = "auto"
"""``--profile auto`` / ``--precision auto``: Kiln probes the builds and picks one."""
PADDINGS = ("bucket", "fixed")
ORDERS = ("shards", "sorted")
"""Evaluation order: random shards sorted inside (intervals valid mid-run), or the whole
split sorted by length (the order before intervals; figures only valid at the end)."""
SPLITS = ("train", "dev", "test")

# The option choices, written once: profiles, the CLI and the app import them from here.
Precision = Literal["fp32", "fp16", "bf16", "int8"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
QuantizationKind = Literal["static", "dynamic"]
"""int8 variants: static (calibrated activation ranges) or dynamic (ranges per batch)."""
QUANTIZATIONS: tuple[str, ...] = get_args(QuantizationKind)
CalibrationMethod = Literal["minmax", "entropy", "percentile"]
"""How static int8 picks activation ranges from the calibration set."""
CALIBRATION_METHODS: tuple[str, ...] = get_args(CalibrationMethod)
BudgetMode = Literal["absolute", "relative"]
BUDGET_MODES: tuple[str, ...] = get_args(BudgetMode)

MIN_SEQ_LEN = 8
"""The shortest sequence length a run accepts (as profiles' ``defaults.seq_len``).

A sentence pair spends up to four positions on special tokens (RoBERTa's
``<s> a </s></s> b </s>``), and below the special-token count Hugging Face tokenizers
skip truncation altogether, so a smaller value would be recorded but not applied.
"""
INT8_ONLY = (
    "quantization",
    "calibration_method",
    "calibration_samples",
    "per_channel",
    "keep_float_file",
)
"""Options that only an int8 build reads, whose default is None (= the profile's)."""
CALIBRATION_ONLY = ("calibration_method", "calibration_samples")
"""Options that only static int8 reads: dynamic int8 has no calibration pass."""


def option_flag(name: str) -> str:
    """A config field's command-line spelling, for messages: keep_float_file -> --keep-float."""
    return "--" + name.replace("_", "-").removesuffix("-file")


def options_apply(names: list[str]) -> str:
    """ "--a applies" or "--a, --b apply": the start of a refusal naming given options."""
    flags = ", ".join(map(option_flag, names))
    return f"{flags} {'applies' if len(names) == 1 else 'apply'}"


def _one_of(choices: tuple[str, ...]) -> str:
    return ", ".join(choices[:-1]) + " or " + choices[-1]


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
    quantization: str | None = None
    """int8 variant: static or dynamic; None: the profile's."""
    calibration_method: str | None = None
    calibration_samples: int | None = None
    per_channel: bool | None = None
    accuracy_budget: float = 1.0
    """Largest drop of the task metric vs fp32 that int8 may cost, in points (0-100 scale)."""
    budget_mode: str = "absolute"
    """absolute: points of the metric; relative: percent of the fp32 figure."""
    guard: bool = True
    """Check int8 against the budget on the dev split and repair it when it fails."""
    guard_samples: int = 400
    keep_float_file: str | None = None
    """A keep_float override written by an earlier guard, applied on top of the profile's."""
    evaluate: bool = True
    """False: a benchmark-only run (no accuracy figures)."""
    bench_batch_sizes: tuple[int, ...] | None = None
    """A benchmark grid; None: no benchmark stage."""
    bench_seq_lens: tuple[int, ...] | None = None
    bench_iterations: int | None = 20
    bench_duration_s: float | None = None
    bench_trials: int = 3
    bench_warmup: int = 3
    instances: int | None = None
    """Concurrent sessions (threads) in the benchmark; None: the profile's."""
    processes: int | None = None
    """Concurrent processes in the benchmark, each with its own session; None: the profile's."""
    confidence: float = 0.95
    """Confidence level of every interval the run reports."""
    until: float | None = None
    """Stop the evaluation at the first shard boundary where the main metric's
    anytime-valid interval for the whole split is this narrow (its full width, 0-1
    scale); None: evaluate every example."""
    paired: bool = True
    """Pair a non-fp32 build with the fp32 reference on the same examples (one more pass)."""
    order: str = "shards"
    """``shards`` (random shards, each sorted by length) or ``sorted`` (the whole split)."""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dataset and self.dataset_file:
            raise ConfigError("give either a dataset or a dataset file, not both")
        if self.dataset_file and not self.dataset_format:
            raise ConfigError(
                "a dataset file needs its format",
                hint="add --format bio|tsv|xnli",
            )
        if self.dataset_format and not self.dataset_file:
            raise ConfigError(
                f"--format {self.dataset_format} applies only to --dataset-file",
                hint="drop --format, or give the file with --dataset-file",
            )
        if self.perf_only and self.weights:
            raise ConfigError(
                "--weights has no effect on a performance-only run (random weights)",
                hint="drop --perf-only to evaluate these weights, or drop --weights",
            )
        if self.seq_len is not None and self.seq_len < MIN_SEQ_LEN:
            raise ConfigError(
                f"seq-len must be at least {MIN_SEQ_LEN}, got {self.seq_len}",
                hint=f"use --seq-len {MIN_SEQ_LEN} or more: special tokens alone take up "
                "to 4 positions",
            )
        self._refuse_ignored_int8_options()
        if self.split not in SPLITS:
            raise ConfigError(f"unknown split {self.split!r}", hint=f"use one of {SPLITS}")
        self._check_interval_options()
        if self.padding not in PADDINGS:
            raise ConfigError(f"unknown padding {self.padding!r}", hint=f"use one of {PADDINGS}")
        if bool(self.bench_batch_sizes) != bool(self.bench_seq_lens):
            raise ConfigError(
                "a benchmark grid needs both batch sizes and sequence lengths",
                hint="pass --batch-sizes and --seq-lens together",
            )
        if not self.evaluate and not self.bench_batch_sizes:
            raise ConfigError("nothing to do: evaluation is off and no benchmark grid was given")
        if self.bench_duration_s is not None:
            object.__setattr__(self, "bench_iterations", None)
        if self.quantization not in (None, *QUANTIZATIONS):
            raise ConfigError(
                f"unknown quantization {self.quantization!r}",
                hint=f"use {_one_of(QUANTIZATIONS)}",
            )
        if self.calibration_method not in (None, *CALIBRATION_METHODS):
            raise ConfigError(
                f"unknown calibration method {self.calibration_method!r}",
                hint=f"use {_one_of(CALIBRATION_METHODS)}",
            )
        if self.budget_mode not in BUDGET_MODES:
            raise ConfigError(
                f"unknown budget mode {self.budget_mode!r}", hint=f"use {_one_of(BUDGET_MODES)}"
            )
        if self.accuracy_budget < 0:
            raise ConfigError("the accuracy budget cannot be negative")
        for name in (
            "batch_size",
            "seq_len",
            "limit",
            "parity_samples",
            "calibration_samples",
            "guard_samples",
            "bench_trials",
            "bench_iterations",
            "instances",
            "processes",
        ):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be at least 1, got {value}")
        if self.bench_warmup < 0:
            raise ConfigError(f"warmup cannot be negative, got {self.bench_warmup}")

    def _check_interval_options(self) -> None:
        """``--confidence`` and ``--until`` are checked here, before any work starts."""
        if not 0.5 < self.confidence < 1.0:
            raise ConfigError(
                f"confidence must be between 0.5 and 1, got {self.confidence}",
                hint="use e.g. --confidence 0.95 (the default) or 0.99",
            )
        if self.order not in ORDERS:
            raise ConfigError(f"unknown order {self.order!r}", hint=f"use {_one_of(ORDERS)}")
        if self.until is None:
            return
        if not 0.0 < self.until <= 1.0:
            raise ConfigError(
                f"--until is an interval width on the 0-1 scale, got {self.until}",
                hint="use e.g. --until 0.05 (stop once the interval is 5 points wide)",
            )
        if self.perf_only or not self.evaluate:
            raise ConfigError(
                "--until stops an evaluation by its accuracy interval; this run scores none",
                hint="drop --until, or drop --perf-only / the benchmark-only options",
            )
        if self.order != "shards":
            raise ConfigError(
                "--until needs the evaluation in random shards (order shards), not sorted",
                hint="drop --until, or use the default order",
            )

    def _refuse_ignored_int8_options(self) -> None:
        """int8 options given to a build that never reads them are refused, not dropped.

        An operator who asks for ``--calibration-method entropy`` on an fp32 or a dynamic
        int8 run would otherwise find it recorded in the run yet without any effect.
        """
        given = [name for name in INT8_ONLY if getattr(self, name) is not None]
        if self.precision != "int8" and given:
            raise ConfigError(
                f"{options_apply(given)} only to --precision int8, not {self.precision}",
                hint="add --precision int8, or drop the int8 options",
            )
        calibration = [name for name in CALIBRATION_ONLY if getattr(self, name) is not None]
        if self.quantization == "dynamic" and calibration:
            raise ConfigError(
                f"{options_apply(calibration)} only to static int8; dynamic "
                "int8 has no calibration pass",
                hint="use --quantization static, or drop the calibration options",
            )

    @property
    def is_auto(self) -> bool:
        """``--profile auto`` or ``--precision auto``: the build is chosen by a probe."""
        return AUTO in (self.profile, self.precision)

    def stand_in(self) -> RunConfig:
        """A concrete config for the checks made before an auto run's choice (model, data,
        shapes): the first candidate's profile, fp32."""
        profile = "cpu-onnxruntime" if self.profile == AUTO else self.profile
        return replace(self, profile=profile, precision="fp32")

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
        for key in ("bench_batch_sizes", "bench_seq_lens"):
            if known.get(key) is not None:
                known[key] = tuple(known[key])
        return cls(**known)
