"""Where Kiln keeps things: the store, caches and artifacts under ``KILN_HOME``.

``KILN_HOME`` lets several labs (and every test) keep stores that never mix; without it
Kiln uses the platform's user data directory. Shipped files (``assets/``,
``profiles/``) live beside the packages in the source tree.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

REPO_ROOT = Path(__file__).resolve().parent.parent


def kiln_home() -> Path:
    """The directory for the run store, caches and artifacts (created, user-only)."""
    env = os.environ.get("KILN_HOME")
    home = Path(env).expanduser() if env else Path(platformdirs.user_data_dir("kiln"))
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    return home


def cache_dir(*parts: str) -> Path:
    """A cache sub-directory under ``KILN_HOME/cache`` (created)."""
    path = kiln_home().joinpath("cache", *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def artifacts_dir(*parts: str) -> Path:
    """An artifacts sub-directory under ``KILN_HOME/artifacts`` (created)."""
    path = kiln_home().joinpath("artifacts", *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def assets_dir() -> Path:
    """Built-in models and model cards shipped with Kiln (``KILN_ASSETS`` overrides)."""
    env = os.environ.get("KILN_ASSETS")
    return Path(env) if env else REPO_ROOT / "assets"


def profiles_dir() -> Path:
    """Hardware profiles shipped with Kiln (``KILN_PROFILES`` overrides)."""
    env = os.environ.get("KILN_PROFILES")
    return Path(env) if env else REPO_ROOT / "profiles"
