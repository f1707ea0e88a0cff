"""``kiln serve``: the app in a browser (textual-serve, the ``[serve]`` extra).

The server itself lives in :mod:`kiln_lab.tui.web.server`; this module only parses
the options and says how to install the extra when it is missing, so ``kiln --help``
and every other command never import aiohttp.
"""

from __future__ import annotations

import argparse
import importlib.util

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
    if public_url and not public_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"--public-url must start with http:// or https://, got {public_url!r}",
            hint="give the scheme, host and port browsers use, e.g. https://lab.example:443",
        )
    serve(ServeOptions(args.host, port, sessions, public_url=public_url))
    return 0
