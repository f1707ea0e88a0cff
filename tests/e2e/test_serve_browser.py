"""``kiln serve`` in a real browser: headless Chromium opens the page, presses r, and
the demo runs to the end; a screenshot of the page is saved.

Chromium is driven over the Chrome DevTools protocol (its ``--remote-debugging-port``,
spoken through aiohttp's websocket client, which the ``[serve]`` extra brings). The
page's terminal is a canvas, so success is read where it is recorded: the run store
holds a succeeded run, started by the key press in the page. The screenshot lands in
``$KILN_SCREENSHOT_DIR`` when set (CI keeps it), else in the test's temporary folder.

Needs Debian's ``chromium`` (``apt-get install chromium``); skipped without it.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("textual_serve", reason="kiln serve needs the [serve] extra")

import aiohttp  # noqa: E402

from kiln_lab.core.store import RunStore  # noqa: E402

REPO = Path(__file__).resolve().parent.parent.parent
DEMO_WEIGHTS = REPO / "assets" / "models" / "zh-ner-tiny" / "model.safetensors"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt install chromium)"),
    pytest.mark.skipif(not DEMO_WEIGHTS.exists(), reason="the demo model zh-ner-tiny is not built"),
]


class Page:
    """One Chrome DevTools websocket to one page: commands by id, events ignored."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self.ids)
        await self.ws.send_json({"id": number, "method": method, "params": params})
        async for message in self.ws:
            data = json.loads(message.data)
            if data.get("id") == number:
                if "error" in data:
                    raise AssertionError(f"{method}: {data['error']}")
                return data.get("result", {})
        raise AssertionError(f"the browser closed the DevTools socket during {method}")

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def press(self, key: str) -> None:
        code = f"Key{key.upper()}"
        for kind in ("keyDown", "keyUp"):
            await self.call(
                "Input.dispatchKeyEvent",
                type=kind,
                key=key,
                code=code,
                text=key if kind == "keyDown" else "",
                windowsVirtualKeyCode=ord(key.upper()),
            )


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(  # noqa: S603 - fixed argument list
        [sys.executable, "-m", "kiln_lab.tui.cli", "serve", "--port", str(free_port())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert server.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        if "served at " in line:
            return server, line.split("served at ", 1)[1].strip()
        if not line and server.poll() is not None:
            break
    server.kill()
    raise AssertionError("kiln serve did not print its address")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def open_page(profile: Path) -> tuple[subprocess.Popen[bytes], aiohttp.ClientSession, Page]:
    port = free_port()
    browser = subprocess.Popen(  # noqa: S603 - fixed argument list
        [
            CHROMIUM or "chromium",
            "--headless=new",
            "--no-sandbox",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--window-size=1280,800",
            f"--remote-debugging-port={port}",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    session = aiohttp.ClientSession()
    for _ in range(100):
        try:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as answer:
                pages = [t for t in await answer.json() if t.get("type") == "page"]
            if pages:
                ws = await session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)
                return browser, session, Page(ws)
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    browser.kill()
    await session.close()
    raise AssertionError("chromium's DevTools endpoint never came up")


async def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def runs(home: Path) -> list[Any]:
    store_path = home / "runs.sqlite"
    if not store_path.exists():
        return []
    with RunStore(store_path) as store:
        return store.runs(limit=10)


async def drive(url: str, home: Path, profile: Path, shot: Path) -> None:
    browser, session, page = await open_page(profile)
    try:
        await page.call("Page.enable")
        await page.call("Page.navigate", url=url)
        # The app's first frames are over 10 bytes: textual.js marks the body then.
        await wait_for(
            lambda: page.evaluate("document.body.classList.contains('-first-byte')"),
            60,
            "the app's first frame in the page",
        )
        await asyncio.sleep(3)  # the welcome screen's own start-up (catalogue, store)
        await page.evaluate("document.querySelector('.xterm-helper-textarea').focus()")
        await page.press("r")

        async def finished() -> Any:
            done = [r for r in runs(home) if r.finished]
            return done[0] if done else None

        record = await wait_for(finished, 200, "the demo run started from the page to finish")
        assert record.status == "succeeded", record.error
        assert record.config["model"] == "zh-ner-tiny"
        await asyncio.sleep(2)  # the page shows the finished run
        picture = await page.call("Page.captureScreenshot", format="png")
        shot.write_bytes(base64.b64decode(picture["data"]))
    finally:
        await page.ws.close()
        await session.close()
        browser.terminate()
        browser.wait(timeout=20)


def test_the_demo_runs_from_a_browser(kiln_home: Path, tmp_path: Path) -> None:
    env = os.environ | {"KILN_HOME": str(kiln_home), "KILN_ASSETS": str(REPO / "assets")}
    server, url = start_server(env)
    out = Path(os.environ.get("KILN_SCREENSHOT_DIR") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    shot = out / "kiln-serve-demo.png"
    try:
        assert url.startswith("http://127.0.0.1:")
        asyncio.run(drive(url, kiln_home, tmp_path / "chromium-profile", shot))
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    assert shot.stat().st_size > 10_000, "the screenshot is empty"
