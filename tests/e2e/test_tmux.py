"""The real app in a real terminal: tmux runs ``kiln``, we press keys and read the pane.

On a fresh store the app opens on the welcome screen; ``r`` runs the built-in demo
(``zh-ner-tiny``). Where the demo's weights are not built yet, the same path runs the
tiny test model instead (chosen through the command palette).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kiln_lab.core.store import RunStore

REPO = Path(__file__).resolve().parent.parent.parent
DEMO_WEIGHTS = REPO / "assets" / "models" / "zh-ner-tiny" / "model.safetensors"
TMUX = shutil.which("tmux")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(240),
    pytest.mark.skipif(TMUX is None, reason="tmux is not installed"),
]


class Terminal:
    """One tmux server of our own (its own socket), one window, 80x24."""

    def __init__(self, env: dict[str, str], width: int = 80, height: int = 24) -> None:
        self.socket = f"kiln-e2e-{os.getpid()}-{time.monotonic_ns()}"
        self.env = env
        self.size = (width, height)

    def tmux(self, *args: str) -> str:
        done = subprocess.run(  # noqa: S603 - fixed argument list
            [TMUX, "-L", self.socket, *args], capture_output=True, text=True, check=False
        )
        return done.stdout

    def start(self, command: list[str]) -> None:
        env_args = [f"{k}={v}" for k, v in self.env.items()]
        shell = " ".join(["env", *env_args, *command, "; echo KILN-EXITED; sleep 600"])
        self.tmux(
            "new-session",
            "-d",
            "-s",
            "kiln",
            "-x",
            str(self.size[0]),
            "-y",
            str(self.size[1]),
            shell,
        )

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.tmux("send-keys", "-t", "kiln", key)
            time.sleep(0.15)

    def text(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "kiln")

    def wait(self, predicate: Callable[[str], bool], timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.text()
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen shows:\n{screen}")
            time.sleep(0.25)

    def close(self) -> None:
        self.tmux("kill-server")


@pytest.fixture
def terminal_env(kiln_home: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    env = {
        "KILN_HOME": str(kiln_home),
        "PATH": os.environ.get("PATH", ""),
        "TERM": "xterm-256color",
    }
    if DEMO_WEIGHTS.exists():
        env["KILN_ASSETS"] = str(REPO / "assets")
    else:
        env["KILN_ASSETS"] = str(request.getfixturevalue("tiny_assets"))
    return env


def kiln(*args: str) -> list[str]:
    return [sys.executable, "-m", "kiln_lab.tui.cli", *args]


def choose_model_if_no_demo(term: Terminal) -> None:
    if DEMO_WEIGHTS.exists():
        return
    term.keys("Escape")
    term.wait(
        lambda s: "Run setup" in s and "loading…" not in s.splitlines()[2],
        30,
        "the main screen with the model cards read",
    )
    term.keys("C-p")
    term.wait(lambda s: "🔎" in s or "Search for commands" in s, 10, "the command palette")
    term.keys("Model: tiny-ner-bert")
    term.wait(lambda s: "Model: tiny-ner-bert" in s, 10, "the palette's match")
    term.keys("Enter")
    term.wait(lambda s: "tiny-ner-bert" in s.splitlines()[2], 10, "tiny-ner-bert chosen")


def finished(screen: str) -> bool:
    return "succeeded" in screen.splitlines()[0] and "✓ report" in screen


def test_demo_run_then_detach_and_reattach(terminal_env: dict[str, str]) -> None:
    term = Terminal(terminal_env)
    try:
        term.start(kiln())
        term.wait(lambda s: "Welcome to Kiln" in s, 20, "the welcome screen")
        choose_model_if_no_demo(term)
        term.keys("r")
        screen = term.wait(finished, 150, "the first run to finish")
        assert "entity F1" in screen
        f1_line = next(line for line in screen.splitlines() if "entity F1 0." in line)
        assert any(ch.isdigit() for ch in f1_line.split("entity F1", 1)[1])
        for stage in ("resolve", "load", "export", "compile", "verify", "evaluate", "report"):
            assert f"✓ {stage}" in screen, stage

        # A second run; quit while it goes and leave it running (the default).
        term.keys("r")
        screen = term.wait(lambda s: " running " in s.splitlines()[0], 60, "the second run")
        run_id = screen.splitlines()[0].split("·")[1].split()[0]
        term.keys("q")
        term.wait(lambda s: "Leave it running" in s, 10, "the quit question")
        term.keys("Enter")
        term.wait(lambda s: "KILN-EXITED" in s, 15, "the app to exit")
        with RunStore(Path(terminal_env["KILN_HOME"]) / "runs.sqlite") as store:
            assert not store.run(run_id).finished, "the run must outlive the app"

        # Reopen: the app shows the run live, from the store, until it ends.
        term.tmux("kill-server")
        term = Terminal(terminal_env)
        term.start(kiln())
        screen = term.wait(lambda s: run_id in s.splitlines()[0], 20, "the run reattached")
        assert "Welcome" not in screen
        screen = term.wait(finished, 150, "the reattached run to finish live")
        assert run_id in screen.splitlines()[0]
        assert "entity F1" in screen
    finally:
        term.close()
