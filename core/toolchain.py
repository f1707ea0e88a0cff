"""External tools: vendor compilers and benchmark programs, run for real.

Every command is an argument list handed to ``subprocess.Popen`` (never a shell), so a
placeholder value is one inert argument. The tool's stdout and stderr stream line by
line into the log (the worker tags each line with the running stage), the exit code is
checked, the declared outputs must exist, and a benchmark tool's figures are read with
the profile's regular expressions. Compiled artifacts are cached by a hash of
everything that went into them, like Kiln's own exports.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kiln_lab.core.commandline import render, render_text, used
from kiln_lab.core.errors import ConfigError, ToolchainMissing
from kiln_lab.core.export import cache_key, file_sha256
from kiln_lab.core.paths import cache_dir
from kiln_lab.core.toolrun import ToolFailed, ToolRun, run_tool

__all__ = [
    "CompileResult",
    "ToolContext",
    "ToolFailed",
    "ToolRun",
    "compile_with_tool",
    "parse_figures",
    "run_external_benchmark",
    "run_infer_tool",
    "run_tool",
    "write_calibration",
]

log = logging.getLogger(__name__)

TOOL_VERSION = 1
"""Bump when how Kiln drives tools changes, so old cached artifacts are not reused."""


# -- values for placeholders ---------------------------------------------------------------
@dataclass
class ToolContext:
    """Everything a profile's command lines may refer to for one build."""

    precision: str
    batch_size: int
    seq_len: int
    input_names: tuple[str, ...]
    model_name: str = ""
    num_heads: int = 0
    hidden_size: int = 0
    onnx: Path | None = None
    torchscript: Path | None = None
    calibration: Callable[[], list[dict[str, np.ndarray]]] | None = None
    """Calibration samples (one dict of 1-D arrays per sample), asked for only if used."""
    threads: int | None = None
    instances: int = 1
    processes: int = 1

    def values(self, profile: Any) -> dict[str, Any]:
        tc = profile.toolchain
        return {
            "onnx": str(self.onnx) if self.onnx else "",
            "torchscript": str(self.torchscript) if self.torchscript else "",
            "batch": self.batch_size,
            "seq_len": self.seq_len,
            "precision": tc.precision_values.get(self.precision, self.precision),
            "python": sys.executable,
            "threads": self.threads or 0,
            "instances": self.instances,
            "processes": self.processes,
            "device_id": os.environ.get("KILN_DEVICE_ID", "0"),
            "input_names": ",".join(self.input_names),
            "input_shape": ";".join(
                f"{n}:{self.batch_size},{self.seq_len}" for n in self.input_names
            ),
            "input_shapes_json": json.dumps(
                {n: [self.batch_size, self.seq_len] for n in self.input_names}
            ),
            "input_dims_json": json.dumps(
                [[self.batch_size, self.seq_len] for _ in self.input_names], separators=(",", ":")
            ),
            "num_heads": self.num_heads,
            "hidden_size": self.hidden_size,
            "model_name": self.model_name,
        }


def _tool_identity(argv0: str) -> dict[str, Any]:
    """Which tool binary ran (path, size, mtime): a new install invalidates the cache."""
    found = shutil.which(argv0)
    if not found:
        return {"name": argv0}
    stat = Path(found).stat()
    return {"path": found, "size": stat.st_size, "mtime": int(stat.st_mtime)}


def write_calibration(samples: Sequence[Mapping[str, np.ndarray]]) -> tuple[Path, Path]:
    """Calibration samples as ``sample_00000.npz`` files plus a list file; cached by hash."""
    blob = [
        {k: file_digest(np.ascontiguousarray(v)) for k, v in sorted(s.items())} for s in samples
    ]
    target = cache_dir("calibration", cache_key(kind="npz", samples=blob))
    listing = target / "calibration_list.txt"
    if not listing.exists():
        paths = []
        for index, sample in enumerate(samples):
            path = target / f"sample_{index:05d}.npz"
            np.savez(path, **{k: np.ascontiguousarray(v) for k, v in sample.items()})
            paths.append(str(path))
        listing.write_text("\n".join(paths) + "\n")
    return target, listing


def file_digest(array: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(array.tobytes() + str(array.dtype).encode()).hexdigest()[:16]


@dataclass
class CompileResult:
    artifact: Path
    output_dir: Path
    cached: bool
    argv: list[str]
    outputs: list[Path]
    duration_s: float = 0.0


def compile_with_tool(
    profile: Any,
    context: ToolContext,
    *,
    cancelled: Callable[[], bool] = lambda: False,
) -> CompileResult:
    """Run the profile's compile command (or reuse its cached output)."""
    tc = profile.toolchain
    step = tc.compile
    arguments = (*step.command, *tc.precision_args.get(context.precision, ()))
    names = used(arguments) | used(step.env.values()) | used(step.files.values())
    for needed in ("onnx", "torchscript"):
        if needed in names and getattr(context, needed) is None:
            raise ConfigError(f"the compile command needs {{{needed}}} but none was exported")
    values = context.values(profile)
    extra_files: dict[str, str] = {}
    if names & {"calibration_dir", "calibration_list"}:
        if context.calibration is None:
            raise ConfigError("the compile command needs calibration data, and none is at hand")
        samples = context.calibration()
        if tc.calibration_keys == "indexed":
            samples = [
                {f"input_{i}": s[name] for i, name in enumerate(context.input_names)}
                for s in samples
            ]
        calibration_dir, listing = write_calibration(samples)
        values |= {"calibration_dir": str(calibration_dir), "calibration_list": str(listing)}
    if "keep_float_file" in names:
        keep = profile.keep_float
        extra_files["keep_float.cfg"] = "".join(
            [f"{n}\n" for n in keep.nodes] + [f"OpType::{t}\n" for t in keep.op_types]
        )
    if "op_precision_file" in names:
        extra_files["op_precision.ini"] = "".join(
            f"{op}={mode}\n" for op, mode in profile.op_precision.items()
        )
    key = cache_key(
        kind="external-compile",
        version=TOOL_VERSION,
        profile=profile.name,
        command=[a if isinstance(a, str) else a.model_dump() for a in arguments],
        env=step.env,
        files=step.files,
        artifact=step.artifact,
        values={k: v for k, v in values.items() if k not in ("onnx", "torchscript", "python")},
        inputs={n: file_sha256(Path(values[n])) for n in ("onnx", "torchscript") if n in names},
        extra_files=extra_files,
        tool=_tool_identity(_rendered(arguments[:1], values, context.input_names)[0]),
    )
    out_dir = cache_dir("artifacts", key)
    artifact = out_dir / step.artifact
    record = out_dir / "kiln-compile.json"
    values |= {
        "output_dir": str(out_dir),
        "output": str(artifact),
        "output_stem": str(artifact.with_suffix("")),
    }
    for name in extra_files:
        values["keep_float_file" if name.startswith("keep") else "op_precision_file"] = str(
            out_dir / name
        )
    argv = _rendered(arguments, values, context.input_names)
    if record.exists() and artifact.exists():
        log.info("reusing cached %s build %s", profile.name, artifact)
        return CompileResult(artifact, out_dir, True, argv, _outputs(step, out_dir, artifact))
    for child in out_dir.iterdir():  # an earlier attempt that did not finish
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    for name, text in extra_files.items():
        (out_dir / name).write_text(text)
    env = {k: _render_text(v, values, f"env {k}") for k, v in step.env.items()}
    for name, template in step.files.items():
        (out_dir / name).write_text(_render_text(template, values, f"file {name}"))
    run = run_tool(argv, cwd=out_dir, env=env, timeout_s=step.timeout_s, cancelled=cancelled)
    if not artifact.exists():
        raise ToolFailed(
            f"{Path(argv[0]).name} exited 0 but did not write {step.artifact} in {out_dir}",
            hint="check the profile's compile.artifact against what the tool writes",
        )
    record.write_text(
        json.dumps(
            {"argv": argv, "duration_s": run.duration_s, "tail": run.tail, "key": key}, indent=2
        )
    )
    return CompileResult(
        artifact, out_dir, False, argv, _outputs(step, out_dir, artifact), run.duration_s
    )


def run_infer_tool(
    profile: Any,
    artifact: Path,
    *,
    infer_input: str,
    infer_output: str,
    work_dir: Path,
    batch_size: int,
    seq_len: int,
    precision: str,
    input_names: tuple[str, ...],
    model_name: str = "",
    output_dir: Path | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> ToolRun:
    """Run the profile's infer command once over inputs already written in its layout.

    The tool's lines stream into the run's log as they come; a non-zero exit is a
    :class:`ToolFailed` with the command and its last lines.
    """
    step = profile.toolchain.infer
    defaults = profile.defaults
    context = ToolContext(
        precision=precision,
        batch_size=batch_size,
        seq_len=seq_len,
        input_names=input_names,
        model_name=model_name,
        threads=defaults.intra_op_threads,
        instances=defaults.instances,
        processes=defaults.processes,
    )
    values = _compiled_values(profile, context, artifact, output_dir) | {
        "infer_input": infer_input,
        "infer_output": infer_output,
    }
    argv = _rendered(step.command, values, input_names)
    env = {k: _render_text(v, values, f"env {k}") for k, v in step.env.items()}
    for name, template in step.files.items():
        (work_dir / name).write_text(_render_text(template, values, f"file {name}"))
    return run_tool(argv, cwd=work_dir, env=env, timeout_s=step.timeout_s, cancelled=cancelled)


def _compiled_values(
    profile: Any, context: ToolContext, artifact: Path, output_dir: Path | None
) -> dict[str, Any]:
    """Placeholder values for a step that runs the compiled artifact (benchmark, infer)."""
    return context.values(profile) | {
        "output": str(artifact),
        "output_dir": str(output_dir or artifact.parent),
        "output_stem": str(artifact.with_suffix("")),
    }


def _rendered(arguments: Sequence[Any], values: Mapping[str, Any], inputs: Sequence[str]) -> list:
    try:
        return render(arguments, values, input_names=inputs)
    except KeyError as exc:
        name = str(exc).strip("'\"")
        if name.startswith("env."):
            raise ToolchainMissing(
                f"environment variable {name[4:]} is not set (the command line uses {{{name}}})",
                hint=f"export {name[4:]}=... (usually by sourcing the vendor's environment script)",
            ) from None
        raise ConfigError(f"placeholder {{{name}}} has no value for this step") from None


def _render_text(template: str, values: Mapping[str, Any], what: str) -> str:
    try:
        return render_text(template, values)
    except KeyError as exc:
        raise ConfigError(f"{what}: placeholder {exc} has no value for this step") from None


def _outputs(step: Any, out_dir: Path, artifact: Path) -> list[Path]:
    found = [artifact]
    for pattern in step.outputs:
        found += [p for p in sorted(out_dir.glob(pattern)) if p.is_file() and p not in found]
    return found


# -- benchmark -----------------------------------------------------------------------------
def parse_figures(lines: Iterable[str], figures: Mapping[str, Any]) -> dict[str, float]:
    """Each figure's number from the tool's output (the last line that matches wins)."""
    found: dict[str, float] = {}
    patterns = {name: (re.compile(f.pattern), f.scale) for name, f in figures.items()}
    for line in lines:
        for name, (pattern, scale) in patterns.items():
            match = pattern.search(line)
            if match:
                try:
                    found[name] = float(match.group(1)) * scale
                except ValueError:
                    continue
    return found


def run_external_benchmark(
    profile: Any,
    artifact: Path,
    *,
    batch_size: int,
    seq_len: int,
    precision: str = "fp32",
    input_names: tuple[str, ...] = ("input_ids", "attention_mask"),
    model_name: str = "",
    output_dir: Path | None = None,
    iterations: int | None = None,
    warmup: int | None = None,
    threads: int | None = None,
    instances: int | None = None,
    processes: int | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> dict[str, Any]:
    """Run the profile's benchmark command on a compiled artifact; its figures as a dict.

    Returns ``samples_per_s`` (always), whichever latency figures the profile reads
    (``latency_p50_ms``, ``latency_p99_ms``, ...), the command that ran, its duration
    and the last lines of its output. Tool lines go to the log as they come.
    """
    step = profile.toolchain.benchmark if profile.toolchain else None
    if step is None:
        raise ConfigError(
            f"profile '{profile.name}' has no benchmark command",
            path=profile.profile_path,
            hint="add toolchain.benchmark with a command and its figures",
        )
    defaults = profile.defaults
    context = ToolContext(
        precision=precision,
        batch_size=batch_size,
        seq_len=seq_len,
        input_names=input_names,
        model_name=model_name,
        threads=threads or defaults.intra_op_threads,
        instances=instances or defaults.instances,
        processes=processes or defaults.processes,
    )
    artifact = Path(artifact)
    values = _compiled_values(profile, context, artifact, output_dir) | {
        "iterations": iterations or step.iterations,
        "warmup": step.warmup if warmup is None else warmup,
    }
    argv = _rendered(step.command, values, input_names)
    env = {k: _render_text(v, values, f"env {k}") for k, v in step.env.items()}
    work = Path(tempfile.mkdtemp(prefix="bench-", dir=cache_dir("tool-work")))
    try:
        for name, template in step.files.items():
            (work / name).write_text(_render_text(template, values, f"file {name}"))
        run = run_tool(argv, cwd=work, env=env, timeout_s=step.timeout_s, cancelled=cancelled)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures = parse_figures(run.lines, step.figures)
    if "samples_per_s" not in figures:
        raise ToolFailed(
            f"{Path(argv[0]).name} finished, but no line matched the samples_per_s pattern "
            f"{step.figures['samples_per_s'].pattern!r}",
            path=profile.profile_path,
            hint="compare the pattern with the tool's output in the log",
        )
    if step.throughput_unit == "batches":
        figures["samples_per_s"] *= batch_size
    missing = sorted(set(step.figures) - set(figures))
    if missing:
        log.warning("benchmark output had no match for %s", ", ".join(missing))
    return {
        **figures,
        "batch_size": batch_size,
        "seq_len": seq_len,
        "command": argv,
        "duration_s": run.duration_s,
        "lines": run.tail,
    }
