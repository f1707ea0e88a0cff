"""Hardware profiles: one YAML file per target, parsed into typed frozen configs.

A profile says which runtime executes the model, which precisions it offers, how to
tell whether it can run on this machine, and its default knobs. A profile that cannot
run here is listed as unavailable with the reason and the fix, never hidden.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field

from core.configfile import FrozenConfig, load_config
from core.errors import ConfigError, ToolchainMissing
from core.paths import profiles_dir

Precision = Literal["fp32", "fp16", "bf16", "int8"]
RuntimeName = Literal["torch", "onnxruntime"]


class Detection(FrozenConfig):
    """What must be present for the profile to run here."""

    python_modules: tuple[str, ...] = ()
    executables: tuple[str, ...] = ()
    env_vars: tuple[str, ...] = ()
    execution_providers: tuple[str, ...] = ()
    """ONNX Runtime providers that must be listed by ``get_available_providers()``."""
    setup_hint: str = ""
    """The usual fix when something is missing (e.g. 'source /opt/vendor/set_env.sh')."""


class Defaults(FrozenConfig):
    batch_size: int = Field(default=32, ge=1)
    seq_len: int | None = Field(default=None, ge=8)
    """None: the card's max_seq_len."""
    intra_op_threads: int | None = Field(default=None, ge=1)
    """None: the runtime's default (all cores)."""
    inter_op_threads: int | None = Field(default=None, ge=1)


class GraphOptions(FrozenConfig):
    """Graph rewriting before the runtime sees the model."""

    fusion: bool = False
    """ONNX Runtime transformer fusion (Attention, SkipLayerNorm, BiasGelu, ...)."""


class Int8Options(FrozenConfig):
    """How this target builds int8 when asked for it."""

    method: Literal["static", "dynamic"] = "static"
    """static: QDQ with calibrated activation ranges; dynamic: ranges per batch at run time."""
    calibration_method: Literal["minmax", "entropy", "percentile"] = "minmax"
    calibration_samples: int = Field(default=200, ge=1)
    """Samples drawn from the dataset's train split to calibrate activation ranges."""
    per_channel: bool = False


class KeepFloat(FrozenConfig):
    """Ops kept at higher precision (like Ascend's op-precision file)."""

    op_types: tuple[str, ...] = ()
    nodes: tuple[str, ...] = ()


class Profile(FrozenConfig):
    """One hardware target."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    title: str
    description: str = ""
    runtime: RuntimeName
    device: str = "cpu"
    execution_providers: tuple[str, ...] = ()
    precisions: tuple[Precision, ...] = Field(min_length=1)
    detect: Detection = Detection()
    defaults: Defaults = Defaults()
    static_shapes: bool = False
    """Vendor compilers often need fixed batch and sequence shapes."""
    optimize: GraphOptions = GraphOptions()
    int8: Int8Options = Int8Options()
    keep_float: KeepFloat = KeepFloat()
    profile_path: str | None = Field(default=None, exclude=True)

    def require_precision(self, precision: str) -> None:
        if precision not in self.precisions:
            raise ConfigError(
                f"profile '{self.name}' does not offer {precision}",
                path=self.profile_path,
                hint=f"choose one of: {', '.join(self.precisions)}",
            )


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str = ""
    fix: str = ""


def check_availability(profile: Profile) -> Availability:
    """Whether ``profile`` can run on this machine, and if not, why and how to fix it."""
    det = profile.detect
    fix = det.setup_hint
    for module in det.python_modules:
        if importlib.util.find_spec(module) is None:
            return Availability(
                False, f"Python module '{module}' is not installed", fix or f"pip install {module}"
            )
    for exe in det.executables:
        if shutil.which(exe) is None:
            return Availability(
                False,
                f"executable '{exe}' is not on PATH",
                fix or f"install {exe} and add it to PATH",
            )
    for var in det.env_vars:
        if not os.environ.get(var):
            return Availability(
                False, f"environment variable {var} is not set", fix or f"export {var}=..."
            )
    if det.execution_providers:
        import onnxruntime

        have = set(onnxruntime.get_available_providers())
        for provider in det.execution_providers:
            if provider not in have:
                return Availability(
                    False,
                    f"ONNX Runtime has no {provider} (has: {', '.join(sorted(have))})",
                    fix or "install the onnxruntime build that includes it",
                )
    return Availability(True)


def require_available(profile: Profile) -> None:
    status = check_availability(profile)
    if not status.available:
        raise ToolchainMissing(
            f"profile '{profile.name}' cannot run here: {status.reason}",
            path=profile.profile_path,
            hint=status.fix,
        )


def load_profile_file(path: Path | str) -> Profile:
    profile = load_config(path, Profile)
    return profile.model_copy(update={"profile_path": str(Path(path).resolve())})


def list_profiles() -> list[Profile]:
    return [load_profile_file(p) for p in sorted(profiles_dir().glob("*.yaml"))]


def get_profile(name_or_path: str) -> Profile:
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") and candidate.exists():
        return load_profile_file(candidate)
    path = profiles_dir() / f"{name_or_path}.yaml"
    if path.exists():
        return load_profile_file(path)
    known = sorted(p.stem for p in profiles_dir().glob("*.yaml"))
    close = difflib.get_close_matches(name_or_path, known, n=1)
    maybe = f"did you mean '{close[0]}'? " if close else ""
    raise ConfigError(
        f"no profile named {name_or_path!r}",
        path=profiles_dir(),
        hint=f"{maybe}known profiles: {', '.join(known)} (`kiln profiles` lists them)",
    )
