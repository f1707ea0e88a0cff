"""Running one external command for real: an argument list, streamed, checked, stoppable.

``subprocess.Popen`` gets the argument list itself (never a shell), stdout and stderr
interleaved. Each line goes to the log as it arrives (the worker turns log records into
``LogLine`` events tagged with the running stage); a cancel or a timeout ends the tool
and its children (its own process group); a non-zero exit is a ``ToolFailed`` that
names the command and shows its last lines.
"""

from __future__ import annotations

import logging
import os
import queue
import shlex
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kiln_lab.core.errors import Cancelled, RuntimeFailure, ToolchainMissing

log = logging.getLogger(__name__)
TAIL_LINES = 40


class ToolFailed(RuntimeFailure):
    title = "External tool failed"


@dataclass
class ToolRun:
    """What one tool invocation did."""

    argv: list[str]
    returncode: int
    duration_s: float
    lines: list[str] = field(default_factory=list)
    """Every line of output (stdout and stderr interleaved, as the tool wrote them)."""

    @property
    def tail(self) -> list[str]:
        return self.lines[-TAIL_LINES:]


def tool_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a tool: ours, Python unbuffered, plus the step's extras.

    Nothing is added to ``PYTHONPATH``: Kiln's own interpreter (``{python} -m
    kiln_lab...``) finds ``kiln_lab`` because it is installed there (from the wheel, or
    editable in a checkout), from any directory; and a vendor's Python is never handed
    Kiln's folders, which could shadow its own modules.
    """
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run_tool(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 3600.0,
    cancelled: Callable[[], bool] = lambda: False,
    keep_lines: int = 10_000,
) -> ToolRun:
    """Run one command, streaming its output into the log; raise on a non-zero exit."""
    argv = [str(a) for a in argv]
    name = Path(argv[0]).name
    log.info("running %s", shlex.join(argv))
    start = time.perf_counter()
    try:
        proc = subprocess.Popen(  # noqa: S603 - an argument list, no shell involved
            argv,
            cwd=cwd,
            env=tool_environment(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            start_new_session=True,  # its own process group, so a cancel ends its children
        )
    except FileNotFoundError:
        raise ToolchainMissing(
            f"executable '{argv[0]}' was not found",
            hint="install the tool or put it on PATH (see `kiln doctor`)",
        ) from None
    except PermissionError:
        raise ToolchainMissing(f"executable '{argv[0]}' is not executable") from None
    lines: deque[str] = deque(maxlen=keep_lines)
    pending: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            pending.put(line.rstrip("\r\n"))
        pending.put(None)

    reader = threading.Thread(target=read, daemon=True, name=f"kiln-tool-{name}")
    reader.start()
    deadline = start + timeout_s
    try:
        while True:
            try:
                line = pending.get(timeout=0.2)
            except queue.Empty:
                line = ""
            else:
                if line is None:
                    break
                lines.append(line)
                log.info("[%s] %s", name, line)
                continue
            if cancelled():
                _stop(proc)
                raise Cancelled(f"cancelled while {name} was running")
            if time.perf_counter() > deadline:
                _stop(proc)
                raise ToolFailed(
                    f"{name} did not finish within {timeout_s:g} s",
                    hint="raise the step's timeout_s in the profile, or check the tool",
                )
        returncode = proc.wait()
    except BaseException:
        if proc.poll() is None:
            _stop(proc)
        raise
    reader.join(timeout=1)
    run = ToolRun(argv, returncode, time.perf_counter() - start, list(lines))
    if returncode != 0:
        shown = "\n  ".join(run.tail[-12:]) or "(no output)"
        raise ToolFailed(
            f"{name} exited with status {returncode}; command: {shlex.join(argv)}; "
            f"last output:\n  {shown}",
            hint="the tool's full output is in the run's log",
        )
    log.info("%s finished in %.1f s", name, run.duration_s)
    return run


def _stop(proc: subprocess.Popen[str]) -> None:
    """End a tool we started, and its children (its own process group), by its id."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
