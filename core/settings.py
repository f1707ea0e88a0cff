"""An operator's standing choices: ``KILN_HOME/config.yaml``, overridden by environment.

Only what must outlive one command lives here (today: how large the artifact cache may
grow). The file is optional and read with the same checks as cards and profiles, so a
typo names the file, the line and the nearest valid key.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import field_validator

from kiln_lab.core.configfile import FrozenConfig, load_config
from kiln_lab.core.errors import ConfigError
from kiln_lab.core.paths import kiln_home

CACHE_MAX_SIZE_ENV = "KILN_CACHE_MAX_SIZE"
DEFAULT_CACHE_MAX_SIZE = "4G"
"""About a dozen builds of a base-sized model (fp32 export, fused graph, int8: ~1 GB)."""

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_SCALE = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_size(text: str | int) -> int:
    """Bytes from ``4G``, ``500M``, ``1.5GB``, ``2GiB`` (binary) or a plain number."""
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        return text
    match = _SIZE.match(str(text))
    if not match:
        raise ConfigError(
            f"{text!r} is not a size",
            hint="write a number with an optional unit: 500M, 4G, 1.5GB, 2GiB",
        )
    number, unit, binary = match.groups()
    scale = _SCALE[unit.lower()]
    if binary.lower().startswith("i") and unit:
        scale = 1024 ** "_kmgt".index(unit.lower())
    return int(float(number) * scale)


class Settings(FrozenConfig):
    """``KILN_HOME/config.yaml``: every key optional."""

    cache_max_size: str = DEFAULT_CACHE_MAX_SIZE
    """The artifact cache's size limit: ``kiln cache prune`` trims to it and the app warns
    above it (``KILN_CACHE_MAX_SIZE`` overrides it)."""

    @field_validator("cache_max_size", mode="before")
    @classmethod
    def _a_size(cls, value: object) -> str:
        try:
            parse_size(value)  # type: ignore[arg-type]
        except ConfigError as exc:
            raise ValueError(f"{exc.message} ({exc.hint})") from None
        return str(value)


def settings_path() -> Path:
    return kiln_home() / "config.yaml"


def load_settings() -> Settings:
    """The settings file if there is one, else the defaults."""
    path = settings_path()
    return load_config(path, Settings) if path.is_file() else Settings()


def cache_max_bytes() -> int:
    """The cache limit in bytes: ``KILN_CACHE_MAX_SIZE``, else config.yaml, else 4 GB."""
    env = os.environ.get(CACHE_MAX_SIZE_ENV)
    if env:
        try:
            return parse_size(env)
        except ConfigError as exc:
            exc.message = f"{CACHE_MAX_SIZE_ENV}: {exc.message}"
            raise
    return parse_size(load_settings().cache_max_size)
