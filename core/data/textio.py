"""Reading lab files as text: one place that turns I/O and encoding trouble into DataErrors.

Lab files come from many tools: UTF-8 with or without a BOM, UTF-16 from Windows
editors and Excel, CRLF or CR-only line ends, GBK from older Chinese pipelines. An
operator must get the file and line of the problem and a way out, never a
``UnicodeDecodeError`` traceback.
"""

from __future__ import annotations

import codecs
import logging
import re
from pathlib import Path

from kiln_lab.core.errors import DataError

log = logging.getLogger(__name__)


_LINE_BREAK = re.compile(r"\r\n|\r|\n")
"""Line ends as editors count them: CRLF (Windows), CR alone (classic Mac, some exporters)
and LF. ``str.splitlines`` would also split on U+2028 or U+0085, which occur in real text."""
_LINE_BREAK_BYTES = re.compile(rb"\r\n|\r|\n")

BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
"""Byte-order marks and the encoding each announces; UTF-32 LE first, since its BOM
begins with UTF-16 LE's."""


def detect_bom(raw: bytes) -> tuple[str, int] | None:
    """The encoding a leading byte-order mark announces and the mark's length, if any."""
    for bom, encoding in BOMS:
        if raw.startswith(bom):
            return encoding, len(bom)
    return None


def _decode(raw: bytes, path: Path) -> str:
    """The file's text: the encoding its BOM names (UTF-8, -16 or -32), else UTF-8.

    A file whose bytes do not decode gets a conversion hint for what it most likely is:
    the BOM's encoding, UTF-16 when NUL bytes give away a BOM-less UTF-16 file, else GBK.
    """
    found = detect_bom(raw)
    encoding, skip = found if found else ("utf-8", 0)
    try:
        text = raw[skip:].decode(encoding)
    except UnicodeDecodeError as exc:
        at = skip + exc.start
        line = len(_LINE_BREAK_BYTES.findall(raw, 0, at)) + 1
        bad = raw[at : at + 4].hex(" ")
        if found:
            source = encoding.upper().replace("-LE", "LE").replace("-BE", "BE")  # iconv's names
            why = f"its byte-order mark says {source}"
        elif raw.count(0) > len(raw) // 8:
            source, why = "UTF-16", "NUL bytes between characters suggest UTF-16 without a BOM"
        else:
            source, why = "GBK", "GBK is common for Chinese data"
        raise DataError(
            f"file is not {encoding.upper()}: undecodable bytes {bad} at line {line}",
            path=path,
            line=line,
            hint=f"convert it, e.g. `iconv -f {source} -t UTF-8 {path.name} > {path.stem}.utf8"
            f"{path.suffix}` ({why})",
        ) from None
    if found and encoding != "utf-8":
        log.info("%s: read as %s (byte-order mark)", path, encoding.upper())
    return text


def read_lines(path: str | Path) -> list[str]:
    """The file's lines without line ends.

    Any BOM is honoured and dropped (UTF-8, UTF-16 and UTF-32 files are all read), and
    CRLF, CR-only and LF line ends are all accepted, mixed or not: a CR-only file read
    as one line would be one giant sentence that scores zero without a word of warning.
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
    lines = _LINE_BREAK.split(_decode(raw, path))
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def short(value: str, limit: int = 60) -> str:
    """A value quoted for an error message, cut so one bad line cannot flood the screen."""
    return repr(value if len(value) <= limit else value[:limit] + "…")
