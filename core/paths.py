"""Where Kiln keeps things: the store, caches and artifacts under ``KILN_HOME``.

``KILN_HOME`` lets several labs (and every test) keep stores that never mix; without it
Kiln uses the platform's user data directory.

Shipped files (``assets/``: built-in models and cards; ``profiles/``) sit beside the
``core/`` folder in both layouts Kiln runs from: in a checkout, ``core/``, ``assets/``
and ``profiles/`` are top-level folders of the repository; installed from the wheel,
they are ``kiln_lab/core``, ``kiln_lab/assets`` and ``kiln_lab/profiles`` (package data,
see ``pyproject.toml``). So one rule, "the parent of ``core/``", finds them in both,
and nothing depends on the current directory or on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import platformdirs

from kiln_lab.core.errors import ConfigError

SHIPPED_ROOT = Path(__file__).resolve().parent.parent
"""The folder that holds ``assets/`` and ``profiles/``: the repository root in a checkout,
the installed ``kiln_lab`` package directory otherwise (not necessarily a repository)."""


def kiln_home() -> Path:
    """The directory for the run store, caches and artifacts (created, user-only)."""
    env = os.environ.get("KILN_HOME")
    home = Path(env).expanduser() if env else Path(platformdirs.user_data_dir("kiln"))
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    return home


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


def plain_name(part: str, what: str = "name") -> str:
    """``part`` if it is one plain path component (no ``/``, no ``..``), else ConfigError.

    Run ids and cache keys become directory names; one from a user (``kiln report
    ../../etc``) or a damaged store must not reach outside ``KILN_HOME``.
    """
    if not isinstance(part, str) or not _PLAIN_NAME.fullmatch(part):
        raise ConfigError(
            f"{what} {part!r} is not a plain name (letters, digits, '.', '_', '-'; no '/' or '..')",
            hint="run ids look like 20261122-004700-3fa2; `kiln runs` lists them",
        )
    return part


def _under(base: str, parts: tuple[str, ...], what: str) -> Path:
    path = kiln_home().joinpath(base, *(plain_name(p, what) for p in parts))
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir(*parts: str) -> Path:
    """A cache sub-directory under ``KILN_HOME/cache`` (created; plain names only)."""
    return _under("cache", parts, "cache directory")


def artifacts_dir(*parts: str) -> Path:
    """A run's artifacts directory under ``KILN_HOME/artifacts`` (created; plain names only)."""
    return _under("artifacts", parts, "run id")


def assets_dir() -> Path:
    """Built-in models and model cards shipped with Kiln (``KILN_ASSETS`` overrides)."""
    env = os.environ.get("KILN_ASSETS")
    return Path(env) if env else SHIPPED_ROOT / "assets"


def profiles_dir() -> Path:
    """Hardware profiles shipped with Kiln (``KILN_PROFILES`` overrides)."""
    env = os.environ.get("KILN_PROFILES")
    return Path(env) if env else SHIPPED_ROOT / "profiles"
