"""Command lines of external tools: argument lists with placeholders, never a shell.

A profile writes a tool's command line as a list of arguments. Each argument may hold
placeholders (``{onnx}``, ``{batch}``, ``{env.NEUWARE_HOME}``...) that are filled in with
``str.format_map`` one argument at a time, so a value is always exactly one argument,
whatever it contains: spaces, quotes, ``;``, ``$(...)`` and ``*`` stay inert text
because no shell ever sees them. An argument can also be ``{each_input: [...]}``,
repeated once per model input (MagicMind's ``--input_dims`` wants one per input).
"""

from __future__ import annotations

import difflib
import os
import string
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

PLACEHOLDERS: dict[str, str] = {
    "onnx": "the exported ONNX graph (input to the compile step)",
    "torchscript": "the traced TorchScript file (input to the compile step)",
    "output": "the compiled artifact: {output_dir}/<artifact>",
    "output_dir": "a fresh directory for the compile step's outputs (also the working directory)",
    "output_stem": "{output} without its suffix (Ascend's atc appends .om itself)",
    "batch": "batch size",
    "seq_len": "sequence length",
    "precision": "the precision, spelled as the tool wants it (profile's precision_values)",
    "calibration_dir": "directory of calibration samples: one .npz per sample, one array per input",
    "calibration_list": "text file listing the calibration .npz files, one path per line",
    "keep_float_file": "ops kept in float, one per line: node names, and OpType::<type> lines",
    "op_precision_file": "op precision overrides as <OpType>=<mode> lines (Ascend's .ini)",
    "python": "the Python interpreter running Kiln",
    "threads": "intra-op threads from the profile (0: the tool's default)",
    "instances": "concurrent instances from the profile",
    "processes": "concurrent processes from the profile",
    "device_id": "accelerator index (KILN_DEVICE_ID, default 0)",
    "iterations": "timed iterations for the benchmark step",
    "infer_input": "the infer step's inputs, in its layout: the data list (npz-list), "
    "the input directories comma-separated (ais-bench), or the directory (polygraphy-json)",
    "infer_output": "the directory the infer step writes its outputs into",
    "warmup": "untimed warm-up iterations for the benchmark step",
    "input_names": "model input names, comma-separated",
    "input_shape": "name:batch,seq_len per input, ';'-separated (Ascend's --input_shape)",
    "input_shapes_json": 'JSON {"input_ids": [batch, seq_len], ...} (YAML reads it too)',
    "input_dims_json": "JSON [[batch,seq_len],...], one per input (VastAI vamp's --shape)",
    "num_heads": "attention heads of the model",
    "hidden_size": "hidden size of the model",
    "model_name": "the model card's name",
    "env": "an environment variable: {env.NAME}",
}
"""Every placeholder a profile may use, with what it stands for."""

EACH_INPUT_PLACEHOLDERS = {"input_name": "this input's name", "input_index": "this input's index"}
"""Extra placeholders inside ``{each_input: [...]}``."""

MODEL_INPUTS = ("onnx", "torchscript")
COMPILE_OUTPUTS = ("output", "output_dir", "output_stem")


def fields_in(text: str) -> list[str]:
    """The placeholder names used in ``text`` (``{env.X}`` counts as ``env``)."""
    names = []
    for _, field, _, _ in string.Formatter().parse(text):
        if field is None:
            continue
        names.append(field.split(".", 1)[0].split("[", 1)[0])
    return names


def check_placeholders(text: str, *, each_input: bool = False) -> str:
    """Raise ``ValueError`` naming an unknown or malformed placeholder; return ``text``."""
    known = set(PLACEHOLDERS) | (set(EACH_INPUT_PLACEHOLDERS) if each_input else set())
    try:
        names = fields_in(text)
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(
            f"malformed placeholder in {text!r} ({exc}); write {{{{ for a brace"
        ) from None
    for name in names:
        if name == "":
            raise ValueError(f"empty placeholder {{}} in {text!r}; name it, e.g. {{onnx}}")
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
            maybe = f"did you mean {{{close[0]}}}? " if close else ""
            raise ValueError(
                f"unknown placeholder {{{name}}} ({maybe}known: "
                + ", ".join(f"{{{k}}}" for k in sorted(known))
                + ")"
            )
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field.startswith("env") and not field.startswith("env."):
            raise ValueError(f"write environment variables as {{env.NAME}}, not {{{field}}}")
        if spec or conversion:
            raise ValueError(f"placeholder {{{field}}} takes no format spec or conversion")
    return text


class _Environment:
    """``{env.NAME}``: an environment variable; a missing one is an error, not ''."""

    def __getattr__(self, name: str) -> str:
        value = os.environ.get(name)
        if value is None:
            raise KeyError(f"env.{name}")
        return value


def render(
    arguments: Sequence[Any],
    values: Mapping[str, Any],
    *,
    input_names: Sequence[str] = (),
) -> list[str]:
    """The argument list with every placeholder filled in; one template -> one argument.

    ``{each_input: [...]}`` items expand to their arguments once per input name.
    Raises ``KeyError`` naming a placeholder that has no value here.
    """
    scope = {**values, "env": _Environment()}
    argv: list[str] = []
    for item in arguments:
        if isinstance(item, str):
            argv.append(item.format_map(scope))
            continue
        for index, name in enumerate(input_names):
            local = {**scope, "input_name": name, "input_index": index}
            argv.extend(part.format_map(local) for part in each_input_parts(item))
    return argv


def each_input_parts(item: Any) -> tuple[str, ...]:
    """The argument templates of an ``{each_input: [...]}`` item (a mapping or a model)."""
    if isinstance(item, Mapping):
        return tuple(item["each_input"])
    return tuple(item.each_input)


def render_text(template: str, values: Mapping[str, Any]) -> str:
    """A file's text with placeholders filled in (``{{`` and ``}}`` are literal braces)."""
    return template.format_map({**values, "env": _Environment()})


def used(arguments: Iterable[Any]) -> set[str]:
    """Every placeholder name used by an argument list (``each_input`` items included)."""
    names: set[str] = set()
    for item in arguments:
        parts = (item,) if isinstance(item, str) else each_input_parts(item)
        for part in parts:
            names.update(fields_in(part))
    return names
