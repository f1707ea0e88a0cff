"""``kiln serve``: the app in a browser (textual-serve, the ``[serve]`` extra).

The server itself lives in :mod:`kiln_lab.tui.web.server`; this module only parses
the options and says how to install the extra when it is missing, so ``kiln --help``
and every other command never import aiohttp.
"""

from __future__ import annotations

import argparse
import importlib.util
from urllib.parse import urlsplit

from kiln_lab.core.errors import ConfigError, ToolchainMissing


def add_serve_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``kiln serve`` on the CLI's sub-command parser."""
    help_ = "serve the app to a browser (localhost, a random token in the URL)"
    p = sub.add_parser("serve", help=help_, description=help_)
    p.set_defaults(func=cmd_serve)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; reach it with ssh -L)",
    )
    p.add_argument("--port", type=int, default=None, help="port (default 8421)")
    p.add_argument(
        "--max-sessions",
        type=int,
        default=None,
        metavar="N",
        help="browser sessions (app processes) at once (default 3)",
    )
    p.add_argument(
        "--public-url",
        metavar="URL",
        help="the origin browsers use, when a proxy sits in front (e.g. https://lab:443)",
    )


def cmd_serve(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("textual_serve") is None:
        raise ToolchainMissing(
            "kiln serve needs textual-serve, which is not installed",
            hint="pip install 'kiln-lab[serve]' (or pip install textual-serve)",
        )
    from kiln_lab.tui.web.server import DEFAULT_MAX_SESSIONS, DEFAULT_PORT, ServeOptions, serve

    port = DEFAULT_PORT if args.port is None else args.port
    sessions = DEFAULT_MAX_SESSIONS if args.max_sessions is None else args.max_sessions
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port must be 1-65535, got {port}")
    if sessions < 1:
        raise ConfigError(f"--max-sessions must be at least 1, got {sessions}")
    public_url = args.public_url
    if public_url:
        parts = urlsplit(public_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise ConfigError(
                f"--public-url must be an origin (scheme://host[:port], no path), got "
                f"{public_url!r}",
                hint="give the scheme, host and port browsers use, e.g. https://lab.example:443",
            )
    elif args.host in ("0.0.0.0", "::", ""):
        raise ConfigError(
            f"--host {args.host or repr('')} listens on every address, so browsers reach it by "
            "a name this server cannot know, and its Origin check would refuse them",
            hint="add --public-url http://NAME:PORT (the address browsers open), or bind one "
            "address with --host",
        )
    serve(ServeOptions(args.host, port, sessions, public_url=public_url))
    return 0
