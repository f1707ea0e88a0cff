"""Fixtures for the app's tests: a fixed run store, fixed cards, and a pilot helper.

``fake_runs`` (beside this file) writes a store with fixed timestamps; it is put on
``sys.path`` here because the suite imports test files in importlib mode.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import fake_runs  # noqa: E402


@pytest.fixture
def fixed_assets(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two fixed cards (weights absent, so both are perf-only) and the shipped profiles."""
    monkeypatch.setenv("KILN_ASSETS", str(HERE / "data" / "assets"))
    monkeypatch.setenv("KILN_PROFILES", str(REPO / "profiles"))
    return HERE / "data" / "assets"


@pytest.fixture
def fake_store(kiln_home: Path) -> Path:
    """A store with two finished tiny-ner-bert runs: fp32 (reference) and int8."""
    return fake_runs.fake_store(kiln_home / "runs.sqlite")


@pytest.fixture
def profiles_with_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped profiles plus one whose tool is missing, so it shows as unavailable."""
    root = tmp_path / "profiles"
    root.mkdir()
    for path in (REPO / "profiles").glob("*.yaml"):
        shutil.copy(path, root / path.name)
    shutil.copy(
        REPO / "tests" / "data" / "profiles" / "missing-tool.yaml", root / "vendor-missing.yaml"
    )
    monkeypatch.setenv("KILN_PROFILES", str(root))
    return root


async def wait_for(
    pilot, predicate: Callable[[], bool], timeout: float = 30.0, step: float = 0.1
) -> None:
    """Let the app run until ``predicate()`` holds (no fixed sleeps in assertions)."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            app = pilot.app
            view = getattr(getattr(app, "main_screen", None), "view", None)
            state = f"screen {app.screen!r}, run {view and (view.run_id, view.status)}"
            error = getattr(app.screen, "error", None)
            raise AssertionError(
                f"timed out after {timeout}s waiting for {predicate.__code__.co_firstlineno}: "
                f"{state}{f', error {error}' if error else ''}"
            )
        await pilot.pause(step)


@pytest.fixture
def until() -> Callable[..., Awaitable[None]]:
    return wait_for


def widget_text(widget) -> str:
    """What a widget shows, as plain text (its rendered lines)."""
    from textual.geometry import Region

    width, height = widget.size
    lines = widget.render_lines(Region(0, 0, width, height))
    return "\n".join(line.text for line in lines)


@pytest.fixture
def text_of() -> Callable[..., str]:
    return widget_text
