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

import errno
import os
import re
from pathlib import Path

import platformdirs

from kiln_lab.core.errors import ConfigError, DiskFull, StoreError

SHIPPED_ROOT = Path(__file__).resolve().parent.parent
"""The folder that holds ``assets/`` and ``profiles/``: the repository root in a checkout,
the installed ``kiln_lab`` package directory otherwise (not necessarily a repository)."""


def kiln_home() -> Path:
    """The directory for the run store, caches and artifacts (created, user-only)."""
    env = os.environ.get("KILN_HOME")
    home = Path(env).expanduser() if env else Path(platformdirs.user_data_dir("kiln"))
    if home.is_dir():
        return home
    where = "KILN_HOME" if env else "Kiln's data directory"
    if home.exists():
        raise StoreError(
            f"{where} {home} is a file, not a directory",
            path=home,
            hint="set KILN_HOME to a directory (Kiln creates it), or move the file aside",
        )
    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        # A parent that is a file, a read-only disk, a full one: say which, with the path.
        raise StoreError(
            f"{where} {home} cannot be created: {exc.strerror or exc}",
            path=home,
            hint="set KILN_HOME to a writable directory",
        ) from exc
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
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        # A read-only or full KILN_HOME: one line naming the directory, not a traceback.
        from kiln_lab.core.store_open import free_space

        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(
                f"disk full while creating {path} ({free_space(path.parent)})",
                path=path,
                hint="free space on that disk (`kiln cache clear` removes cached artifacts), "
                "or set KILN_HOME to a directory on a larger disk",
            ) from exc
        raise StoreError(
            f"cannot create {path}: {exc.strerror or exc}",
            path=path,
            hint="this command writes under KILN_HOME, so it must be writable (`kiln runs` "
            "and `kiln show` work without); or set KILN_HOME to a writable directory",
        ) from exc
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
