"""Reading lab files as text: one place that turns I/O and encoding trouble into DataErrors.

Lab files come from many tools: UTF-8 with or without a BOM, CRLF line ends from
Windows, GBK from older Chinese pipelines. An operator must get the file and line of
the problem and a way out, never a ``UnicodeDecodeError`` traceback.
"""

from __future__ import annotations

import logging
from pathlib import Path

from kiln_lab.core.errors import DataError

log = logging.getLogger(__name__)


def read_lines(path: str | Path) -> list[str]:
    """The file's lines without line ends (BOM dropped, CRLF and LF both accepted).

    Only ``\\n`` splits lines: ``str.splitlines`` would also split on characters such as
    U+2028 or U+0085 that can occur inside real text.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(
            f"data file not found: {path}",
            path=path,
            hint="check the path (relative paths are taken from the current directory)",
        )
    if not path.is_file():
        raise DataError(f"not a file: {path}", path=path, hint="give the path of a data file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(
            f"cannot read {path}: {exc.strerror or exc}", path=path, hint="check permissions"
        ) from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        bad = raw[exc.start : exc.start + 4].hex(" ")
        raise DataError(
            f"file is not UTF-8: undecodable bytes {bad} at line {line}",
            path=path,
            line=line,
            hint=f"convert it, e.g. `iconv -f GBK -t UTF-8 {path.name} > {path.stem}.utf8"
            f"{path.suffix}` (GBK is common for Chinese data)",
        ) from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def short(value: str, limit: int = 60) -> str:
    """A value quoted for an error message, cut so one bad line cannot flood the screen."""
    return repr(value if len(value) <= limit else value[:limit] + "…")
