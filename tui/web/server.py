"""``kiln serve``: the same app in a browser, through textual-serve, locked down.

textual-serve starts one app process per browser tab and relays its screen over a
websocket. Out of the box it answers anyone who can reach the port, accepts websockets
from any page (so any site open in the operator's browser could drive a lab machine),
starts as many processes as are asked for, runs its command through a shell and pulls
its font from Google. Kiln's server keeps textual-serve's app relay and changes the rest:

- it binds to 127.0.0.1 unless told otherwise (reach it over ``ssh -L``);
- every path sits under a random token (``/<token>/``), printed once at start; a wrong
  or missing token is a 404 that says nothing about what is served;
- the websocket is refused (403) unless its ``Origin`` is this server's own;
- at most ``max_sessions`` app processes run at once; another tab gets a 503;
- the app starts from an argument list (no shell), the page loads only this server's
  files (no external fonts or scripts), and is never framed, cached or sent as referrer.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).with_name("templates")
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
DEFAULT_PORT = 8421
DEFAULT_MAX_SESSIONS = 3
"""Each session is a whole app process (~150 MB); a lab machine's cores run the models."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def app_command() -> list[str]:
    """The app, as the interpreter running this server starts it."""
    return [sys.executable, "-m", "kiln_lab.tui.cli", "app"]


class ExecAppService(AppService):
    """textual-serve's app relay, started from an argument list instead of a shell string."""

    def __init__(self, argv: Sequence[str], **kwargs: Any) -> None:
        super().__init__(" ".join(argv), **kwargs)
        self.argv = list(argv)

    async def _open_app_process(self, width: int = 80, height: int = 24) -> Any:
        environment = self._build_environment(width=width, height=height)
        self._process = process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=environment,
        )
        assert process.stdin is not None
        self._stdin = process.stdin
        return process

    async def stop(self) -> None:
        """Ask the app to quit, then reap it (killed after 10 s): no orphan per closed tab."""
        await super().stop()
        process = self._process
        if process is None or process.returncode is not None:
            return
        try:
            await asyncio.wait_for(process.wait(), timeout=10)
        except TimeoutError:
            process.kill()
            await process.wait()


@dataclass
class ServeOptions:
    """Where and how ``kiln serve`` listens."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    max_sessions: int = DEFAULT_MAX_SESSIONS
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    """The secret first path segment; random per start unless a test fixes it."""
    public_url: str | None = None
    """The origin browsers use when it differs from host:port (a reverse proxy)."""
    argv: list[str] = field(default_factory=app_command)

    @property
    def origin(self) -> str:
        """The one Origin a websocket may come from (scheme://host:port, no path)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The address to open, token included (printed once at start)."""
        return f"{self.origin}/{self.token}/"


class KilnServer(Server):
    """textual-serve's server with a token, an Origin check, a session cap and local fonts."""

    def __init__(self, options: ServeOptions) -> None:
        super().__init__(
            " ".join(options.argv),
            host=options.host,
            port=options.port,
            title="Kiln",
            public_url=options.origin,
        )
        self.options = options
        self.sessions = 0

    # -- the web application ----------------------------------------------------------------
    async def _make_app(self) -> web.Application:
        return self.make_app()

    def make_app(self) -> web.Application:
        """The aiohttp application (tests drive it with aiohttp's test client)."""
        app = web.Application(middlewares=[self._require_token, self._harden])
        aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(TEMPLATES))
        prefix = f"/{self.options.token}"
        app.add_routes(
            [
                web.get(f"{prefix}/", self.handle_index, name="index"),
                web.get(f"{prefix}/ws", self.handle_websocket, name="websocket"),
                web.static(f"{prefix}/static", self.statics_path, name="static"),
            ]
        )
        app.on_startup.append(self.on_startup)
        return app

    @web.middleware
    async def _require_token(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Anything not under ``/<token>/`` is a bare 404 (the token compared in constant time)."""
        first = request.path.lstrip("/").split("/", 1)[0]
        if not hmac.compare_digest(first.encode(), self.options.token.encode()):
            raise web.HTTPNotFound(text="not found")
        if request.path == f"/{self.options.token}":
            raise web.HTTPFound(f"/{self.options.token}/")
        return await handler(request)

    @web.middleware
    async def _harden(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The token must not leak through a Referer, a cache or a framing page."""
        response = await handler(request)
        if not response.prepared:
            response.headers["Referrer-Policy"] = "no-referrer"
            response.headers["Cache-Control"] = "no-store"
            response.headers["X-Frame-Options"] = "DENY"
            response.headers["Content-Security-Policy"] = (
                "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                "script-src 'self' 'unsafe-inline'; connect-src 'self' ws: wss:; "
                "img-src 'self' data:; font-src 'self'; frame-ancestors 'none'"
            )
        return response

    async def on_startup(self, app: web.Application) -> None:
        """Say where to go, once; the token is not logged anywhere else."""
        print(f"Kiln is served at {self.options.url}", flush=True)
        print(
            f"at most {self.options.max_sessions} browser sessions at once; Ctrl+C stops",
            flush=True,
        )

    # -- handlers ---------------------------------------------------------------------------
    async def handle_index(self, request: web.Request) -> web.StreamResponse:  # type: ignore[override]
        prefix = f"{self.options.origin}/{self.options.token}"
        ws_origin = "wss" + prefix[5:] if prefix.startswith("https") else "ws" + prefix[4:]
        context = {
            "title": "Kiln",
            "static_url": f"/{self.options.token}/static/",
            "websocket_url": f"{ws_origin}/ws",
            "font_size": _int(request.query.get("fontsize"), 16),
        }
        return aiohttp_jinja2.render_template("index.html", request, context)

    async def handle_websocket(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("Origin", "")
        if not hmac.compare_digest(origin.encode(), self.options.origin.encode()):
            log.warning("websocket refused: Origin %r is not %s", origin, self.options.origin)
            raise web.HTTPForbidden(text="this page may not open a session")
        if self.sessions >= self.options.max_sessions:
            raise web.HTTPServiceUnavailable(
                text=f"{self.options.max_sessions} sessions are open; close one and reload"
            )
        self.sessions += 1
        try:
            return await self._relay(request)
        finally:
            self.sessions -= 1

    async def _relay(self, request: web.Request) -> web.WebSocketResponse:
        """textual-serve's relay loop, with :class:`ExecAppService` as the app process."""
        websocket = web.WebSocketResponse(heartbeat=15)
        width = _int(request.query.get("width"), 80)
        height = _int(request.query.get("height"), 24)
        service: AppService | None = None
        try:
            await websocket.prepare(request)
            service = ExecAppService(
                self.options.argv,
                write_bytes=websocket.send_bytes,
                write_str=websocket.send_str,
                close=websocket.close,
                download_manager=self.download_manager,
                debug=self.debug,
            )
            await service.start(width, height)
            await self._process_messages(websocket, service)
        except asyncio.CancelledError:
            await websocket.close()
        except Exception:  # noqa: BLE001 - one broken session must not stop the server
            log.exception("session failed")
        finally:
            if service is not None:
                await service.stop()
        return websocket


def _int(value: str | None, default: int) -> int:
    try:
        return max(1, min(int(value or ""), 1000))
    except ValueError:
        return default


def serve(options: ServeOptions) -> None:
    """Run until Ctrl+C (textual-serve's loop and signal handling)."""
    if options.host not in LOOPBACK:
        print(
            f"warning: listening on {options.host}: anyone who can reach this port and "
            "learns the address can drive this machine",
            file=sys.stderr,
            flush=True,
        )
    KilnServer(options).serve()
