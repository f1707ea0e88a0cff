"""Every option ``kiln run`` and ``kiln bench`` accept either takes effect or is refused.

An option that is recorded in the run but read by nothing makes the run's record lie
(``--seq-len 1`` was stored as 1 while the tokenizer skipped truncation). These tests
parse real command lines with the CLI's own parser and check the refusal, in-process.
"""

from __future__ import annotations

import shlex
from unittest import mock

import pytest

from kiln_lab.core.data import TextExample, TokenExample
from kiln_lab.core.errors import ConfigError
from kiln_lab.core.runconfig import MIN_SEQ_LEN, RunConfig
from kiln_lab.core.tokenization import encode
from kiln_lab.tui.cli import build_parser
from kiln_lab.tui.commands import run as run_command
from kiln_lab.tui.commands.run import _config_from_args


def _config(command_line: str) -> RunConfig:
    """The RunConfig a command line makes; ``bench`` goes through ``cmd_bench`` itself."""
    args = build_parser().parse_args(shlex.split(command_line))
    if args.command != "bench":
        return _config_from_args(args)
    captured: list[RunConfig] = []
    with mock.patch.object(run_command, "_launch", lambda config, _: captured.append(config)):
        run_command.cmd_bench(args)
    return captured[0]


@pytest.mark.parametrize(
    ("command_line", "message"),
    [
        ("run -m m --seq-len 1 --limit 200", "seq-len must be at least 8, got 1"),
        ("run -m m --seq-len 7", "seq-len must be at least 8"),
        ("run -m m --format bio", "--format bio applies only to --dataset-file"),
        ("run -m m --perf-only --weights /w", "--weights has no effect on a performance-only"),
        (
            "run -m m --dataset-file f.bio --format bio --split dev",
            "a --dataset-file is read whole",
        ),
        (
            "run -m m --calibration-method entropy",
            "--calibration-method applies only to --precision int8",
        ),
        (
            "run -m m --quantization static --per-channel",
            "--quantization, --per-channel apply only",
        ),
        ("run -m m --keep-float k.yaml", "--keep-float applies only to --precision int8"),
        ("run -m m --accuracy-budget 2", "--accuracy-budget applies only to --precision int8"),
        ("run -m m --budget-mode relative", "--budget-mode applies only to --precision int8"),
        ("run -m m --guard-samples 10", "--guard-samples applies only to --precision int8"),
        ("run -m m --no-guard", "--no-guard only applies to --precision int8"),
        ("run -m m --precision int8 --no-guard --guard-samples 10", "which --no-guard turns off"),
        ("run -m m --precision int8 --perf-only --accuracy-budget 2", "which --perf-only"),
        (
            "run -m m --precision int8 --quantization dynamic --calibration-samples 9",
            "--calibration-samples applies only to static int8",
        ),
        ("bench -m m --iterations 5 --duration 1", "--iterations and --duration both size"),
        ("bench -m m --iterations 0", "bench-iterations must be at least 1"),
        ("bench -m m --warmup -1", "warmup cannot be negative"),
    ],
)
def test_an_option_that_would_be_ignored_is_refused(command_line: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _config(command_line)
    assert message in info.value.message, info.value.message


def test_accepted_options_reach_the_config() -> None:
    config = _config(
        "run -m m --precision int8 --quantization static --calibration-method entropy "
        "--calibration-samples 9 --per-channel --accuracy-budget 2 --budget-mode relative "
        "--guard-samples 10 --seq-len 8 --split dev"
    )
    assert (config.seq_len, config.split, config.calibration_method) == (8, "dev", "entropy")
    assert (config.calibration_samples, config.per_channel) == (9, True)
    assert (config.accuracy_budget, config.budget_mode, config.guard_samples) == (
        2.0,
        "relative",
        10,
    )
    plain = _config("run -m m")
    assert (plain.split, plain.accuracy_budget, plain.budget_mode, plain.guard) == (
        "test",
        1.0,
        "absolute",
        True,
    )
    assert _config("run -m m --precision int8 --no-guard").guard is False
    timed = _config("bench -m m --duration 1.5")
    assert (timed.bench_iterations, timed.bench_duration_s) == (None, 1.5)
    assert _config("bench -m m").bench_iterations == 20


def test_the_minimum_seq_len_is_the_profiles() -> None:
    """Profiles refuse ``defaults.seq_len`` below 8 too: one floor for every way in."""
    from kiln_lab.core.profiles import Defaults

    assert Defaults.model_fields["seq_len"].metadata[0].ge == MIN_SEQ_LEN


class _SpecialTokens:
    """A tokenizer stand-in: only the special-token count matters to the check."""

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return 3 if pair else 2


@pytest.mark.parametrize(
    ("examples", "seq_len", "special"),
    [
        ([TokenExample(("中", "国"), ("O", "O"))], 2, 2),
        ([TextExample(text="a", label="x", text_pair="b")], 3, 3),
    ],
)
def test_encode_refuses_a_length_below_the_special_tokens(
    examples: list, seq_len: int, special: int
) -> None:
    """Below the special-token count Hugging Face tokenizers skip truncation entirely."""
    with pytest.raises(ConfigError) as info:
        encode(examples, _SpecialTokens(), "token-classification", seq_len)
    assert f"adds {special} special tokens" in info.value.message
