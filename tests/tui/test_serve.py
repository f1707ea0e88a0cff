"""``kiln serve``'s locks, through aiohttp's test client: token, Origin, session cap, fonts.

The app process is a stand-in (a Python one-liner that says textual-serve's hello and
exits on its first input), so these run in well under a second; the real app in a real
browser is ``tests/e2e/test_serve_browser.py``.
"""

from __future__ import annotations

import asyncio
import sys

import pytest

pytest.importorskip("textual_serve", reason="kiln serve needs the [serve] extra")

from aiohttp import WSServerHandshakeError  # noqa: E402
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from kiln_lab.tui.web.server import KilnServer, ServeOptions  # noqa: E402

ORIGIN = "http://kiln.test:8421"
STAND_IN = [
    sys.executable,
    "-c",
    "import sys; print('__GANGLION__', flush=True); sys.stdin.buffer.read(1)",
]


def options(**changes: object) -> ServeOptions:
    base = ServeOptions(port=8421, public_url=ORIGIN, argv=STAND_IN, token="t0ken-for-tests")
    for key, value in changes.items():
        setattr(base, key, value)
    return base


async def client_for(opts: ServeOptions) -> TestClient:
    client = TestClient(TestServer(KilnServer(opts).make_app()))
    await client.start_server()
    return client


async def test_index_needs_the_token_and_fetches_nothing_from_outside() -> None:
    client = await client_for(options())
    try:
        page = await client.get("/t0ken-for-tests/")
        html = await page.text()
        assert page.status == 200
        assert "ws://kiln.test:8421/t0ken-for-tests/ws" in html
        assert "googleapis" not in html and "https://" not in html
        assert page.headers["Referrer-Policy"] == "no-referrer"
        font = await client.get("/t0ken-for-tests/static/fonts/RobotoMono-VariableFont_wght.ttf")
        assert font.status == 200
        for path in ("/", "/wrong-token/", "/t0ken-for-test/", "/static/js/textual.js", "/ws"):
            refused = await client.get(path)
            assert refused.status == 404, path
            assert "t0ken" not in await refused.text()
    finally:
        await client.close()


async def test_a_random_token_per_start() -> None:
    first, second = ServeOptions(), ServeOptions()
    assert first.token != second.token and len(first.token) >= 32
    assert first.url == f"http://127.0.0.1:8421/{first.token}/"


async def test_websocket_refused_from_another_origin() -> None:
    client = await client_for(options())
    try:
        for origin in ("http://evil.example", "http://kiln.test:8421.evil.example", None):
            headers = {"Origin": origin} if origin else {}
            with pytest.raises(WSServerHandshakeError) as refused:
                await client.ws_connect("/t0ken-for-tests/ws", headers=headers)
            assert refused.value.status == 403, origin
        with pytest.raises(WSServerHandshakeError) as refused:
            await client.ws_connect("/bad/ws", headers={"Origin": ORIGIN})
        assert refused.value.status == 404
    finally:
        await client.close()


async def test_sessions_are_capped() -> None:
    client = await client_for(options(max_sessions=1))
    try:
        first = await client.ws_connect("/t0ken-for-tests/ws", headers={"Origin": ORIGIN})
        with pytest.raises(WSServerHandshakeError) as refused:
            await client.ws_connect("/t0ken-for-tests/ws", headers={"Origin": ORIGIN})
        assert refused.value.status == 503
        await first.send_json(["stdin", "q"])
        await first.close()
        for _ in range(50):  # the slot frees once the stand-in app has exited
            try:
                again = await client.ws_connect("/t0ken-for-tests/ws", headers={"Origin": ORIGIN})
            except WSServerHandshakeError:
                await asyncio.sleep(0.05)
                continue
            await again.send_json(["stdin", "q"])
            await again.close()
            break
        else:
            pytest.fail("the session slot was never freed")
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--port", "0"], "--port must be 1-65535"),
        (["--max-sessions", "0"], "--max-sessions must be at least 1"),
        (["--public-url", "lab.example:8421"], "must be an origin"),
        (["--public-url", "https://lab.example/kiln"], "must be an origin"),
        (["--host", "0.0.0.0"], "listens on every address"),
    ],
)
def test_serve_refuses_options_it_cannot_honour(args: list[str], says: str, capsys) -> None:
    from kiln_lab.tui.cli import main

    assert main(["serve", *args]) == 1
    assert says in capsys.readouterr().err
