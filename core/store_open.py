"""Opening the run store safely, and saying in one line what is wrong with it.

Kept apart from :mod:`kiln_lab.core.store` (whose methods read and write runs) because
everything here is about the file rather than the runs: is it there, is it ours, is it
whole, can this process write to it. Each problem becomes a ``StoreError`` (or
``DiskFull``) naming the file and the fix, never a SQLite traceback:

- a new store is built under a temporary name and linked into place, so a 0-byte (or
  half-built) ``runs.sqlite`` is never Kiln's own doing, and one found is refused;
- a file Kiln may not write (read-only filesystem, read-only or immutable file,
  directory without write permission) is opened read-only, so history stays readable
  and writing commands say why they cannot write;
- ``PRAGMA quick_check`` runs at every open (about 25 ms on a store of 50 runs and
  45,000 events, 19 MB), so a damaged file is refused before anything is read from or
  written into it.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from kiln_lab.core.errors import DiskFull, KilnError, StoreError

RECOVER_HINT = (
    "move the file aside (Kiln never repairs or overwrites it) and start a new store; "
    "`sqlite3 {path} .recover | sqlite3 recovered.sqlite` salvages what it can"
)


@dataclass(frozen=True)
class OpenedStore:
    """A connection, and why it is read-only when it is (``None``: writable)."""

    conn: sqlite3.Connection
    readonly_reason: str | None


def free_space(where: Path) -> str:
    """``"0.12 GB free there now"``: said in every disk-full error, so the operator knows
    how much to free rather than guessing."""
    try:
        return f"{shutil.disk_usage(where).free / 1e9:.2f} GB free there now"
    except OSError:
        return "free space unknown"


def store_disk_full(path: Path) -> DiskFull:
    return DiskFull(
        f"disk full while writing the run store {path} ({free_space(path.parent)}); "
        "the last change was rolled back, nothing half-written is left",
        path=path,
        hint="free space on that disk (`kiln cache clear` removes cached artifacts), or set "
        "KILN_HOME to a directory on a larger disk; `kiln runs` and `kiln show` still work",
    )


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def translate(exc: BaseException, path: Path, readonly_reason: str | None) -> KilnError | None:
    """The one-line error for a SQLite failure on an open store, or None (a Kiln bug).

    The whole exception chain is read: after a full disk SQLite has already rolled the
    transaction back, so the caller's own ``ROLLBACK`` fails with "no transaction is
    active", which would otherwise hide the real cause.
    """
    texts = [str(e).lower() for e in _chain(exc) if isinstance(e, sqlite3.Error | OSError)]
    if any(
        "database or disk is full" in t or "no space left" in t or "disk quota" in t for t in texts
    ) or any(isinstance(e, OSError) and e.errno == errno.ENOSPC for e in _chain(exc)):
        return store_disk_full(path)
    if any("readonly database" in t or "read-only" in t for t in texts):
        why = readonly_reason or "SQLite refused to write it"
        return StoreError(
            f"the run store is read-only ({why}): this command writes to it",
            path=path,
            hint="make the file and its directory writable (or remount the disk read-write); "
            "`kiln runs` and `kiln show` work on a read-only store",
        )
    if any("malformed" in t or "not a database" in t for t in texts):
        return StoreError(
            "the run store is damaged (database disk image is malformed)",
            path=path,
            hint=RECOVER_HINT.format(path=path),
        )
    if any("disk i/o error" in t for t in texts):
        return StoreError(
            "the disk reported an I/O error on the run store (a deleted or damaged "
            "runs.sqlite-wal, or a failing disk)",
            path=path,
            hint="check the disk; if the store is damaged, " + RECOVER_HINT.format(path=path),
        )
    return None


def _why_readonly(path: Path) -> str | None:
    """Why this process cannot write the store, or None if it can.

    SQLite needs the file and, for its ``-wal`` and ``-shm`` files, the directory.

    Asked with ``access(2)`` and ``statvfs``, never by opening the file: closing any
    descriptor of the store drops every POSIX lock this process holds on it, those of
    SQLite connections already open in the process included (the app and an in-process
    second command have several), and SQLite then corrupts the file under them.
    """
    if os.statvfs(path).f_flag & os.ST_RDONLY:
        return "the filesystem is mounted read-only"
    if not os.access(path, os.R_OK | os.W_OK):
        # access(2) answers EPERM for an immutable file even to root, EACCES for modes.
        return "the file is read-only or immutable"
    if not os.access(path.parent, os.W_OK):
        return f"its directory {path.parent} is not writable"
    return None


def _connect(path: Path, readonly_reason: str | None) -> sqlite3.Connection:
    if readonly_reason is None:
        target: str | Path = path
        uri = False
    else:
        # Nothing can write a read-only filesystem or an immutable file, so SQLite may
        # skip its locks and -shm file (it could not create them); otherwise read-only.
        frozen = "directory" in readonly_reason or "filesystem" in readonly_reason
        target, uri = f"file:{path}?{'immutable=1' if frozen else 'mode=ro'}", True
    conn = sqlite3.connect(
        target, timeout=30.0, isolation_level=None, check_same_thread=False, uri=uri
    )
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def _create(path: Path, initialise: Callable[[sqlite3.Connection], None]) -> None:
    """Build a new store under a temporary name and link it into place whole.

    A killed process or a full disk leaves at most a hidden temporary (removed on the
    next open), never an empty ``runs.sqlite``; ``os.link`` fails if another process
    created the store meanwhile, and then that one is used.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            initialise(conn)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            leftover.unlink(missing_ok=True)


def _remove_stale_temporaries(path: Path) -> None:
    """Half-built stores left by a killed ``_create`` (older than a minute: not racing)."""
    import time

    for stale in path.parent.glob(f".{path.name}.*.new*"):
        with contextlib.suppress(OSError):
            if time.time() - stale.stat().st_mtime > 60:
                stale.unlink()


def open_store(
    path: Path, *, readonly: bool, initialise: Callable[[sqlite3.Connection], None]
) -> OpenedStore:
    """Open (or create) the store at ``path``; refuse anything that is not a whole Kiln store.

    ``initialise`` writes the schema into a new, empty database. Only the file checks
    live here; the application id and schema version are checked by the caller.
    """
    try:
        return _open(path, readonly=readonly, initialise=initialise)
    except KilnError:
        raise
    except (OSError, sqlite3.Error) as exc:
        error = translate(exc, path, None)
        if error is None:
            what = getattr(exc, "strerror", None) or exc
            error = StoreError(
                f"the run store cannot be opened: {what}",
                path=path,
                hint="check that KILN_HOME is a directory you can read; "
                "set KILN_HOME to another directory to start a new store",
            )
        raise error from exc


def _open(
    path: Path, *, readonly: bool, initialise: Callable[[sqlite3.Connection], None]
) -> OpenedStore:
    if path.is_dir():
        raise StoreError(
            "the run store is a directory, not a file",
            path=path,
            hint="move the directory aside, or set KILN_HOME to another directory",
        )
    if path.exists() and path.stat().st_size == 0:
        raise StoreError(
            "the run store is an empty (0-byte) file, so it holds no runs; Kiln never "
            "creates one, so something else truncated or created it",
            path=path,
            hint=f"if no runs were lost, delete it (`rm {path}`) and Kiln starts a new store; "
            "otherwise restore it from a backup",
        )
    if not path.exists():
        if not readonly:
            _remove_stale_temporaries(path)
        try:
            _create(path, initialise)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise store_disk_full(path) from exc
            raise
        except sqlite3.Error as exc:
            raise (translate(exc, path, None) or store_disk_full(path)) from exc
    reason = _why_readonly(path)
    if reason is None and readonly:
        reason = "opened read-only"
    conn = _connect(path, reason)
    try:
        verdict = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        conn.close()
        if "not a database" in str(exc) or "encrypted" in str(exc):
            raise StoreError(
                "this file is not a SQLite database, so not a Kiln run store",
                path=path,
                hint="point KILN_HOME at a directory of its own; Kiln will not overwrite it",
            ) from None
        raise
    if [tuple(row) for row in verdict] != [("ok",)]:
        conn.close()
        # SQLite's report spans lines ("*** in database main ***\nPage 5: ..."): one line.
        first = "; ".join(" ".join(str(row[0]).split()) for row in verdict[:2])
        raise StoreError(
            f"the run store is damaged (SQLite's quick_check: {first[:200]}); "
            "nothing was read from it or written to it",
            path=path,
            hint=RECOVER_HINT.format(path=path),
        )
    return OpenedStore(conn, reason)


class WalWatch:
    """Notices ``runs.sqlite-wal`` deleted (or replaced) under an open connection.

    SQLite keeps writing into the unlinked WAL through its open descriptor, while any
    connection opened afterwards creates a fresh, empty WAL beside the shared index:
    the two then disagree, readers fail with "disk I/O error", and whatever the old WAL
    held is lost when the last connection closes. One ``stat`` per store call (a few
    microseconds) finds it; the store then checkpoints the old WAL into the main file
    (so nothing committed is lost) and reopens, and every process converges on the WAL
    that is at the path again.
    """

    def __init__(self, db_path: Path) -> None:
        self.path = Path(f"{db_path}-wal")
        self._identity: tuple[int, int] | None = None

    def _current(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_dev, st.st_ino)

    def remember(self) -> None:
        """Record the WAL this connection uses (SQLite opens it lazily, at first use)."""
        if self._identity is None:
            self._identity = self._current()

    def forget(self) -> None:
        self._identity = None

    def moved(self) -> str | None:
        """Why the WAL at the path is not this connection's any more, or None."""
        if self._identity is None:
            return None
        now = self._current()
        if now == self._identity:
            return None
        return "was deleted" if now is None else "was replaced by another file"


F = TypeVar("F", bound=Callable[..., Any])


def locked(method: F) -> F:
    """A store method, serialised on the store's (re-entrant) lock, after following a
    WAL deleted under the connection (``_follow_wal``); a SQLite failure becomes the
    one-line error with the path and the fix (:func:`translate`), never a traceback.

    One decorator for every table's methods (runs, events, matrices), so none of them
    misses the WAL check or the translation.
    """

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self._follow_wal()
            try:
                result = method(self, *args, **kwargs)
                self._wal.remember()
                return result
            except sqlite3.Error as exc:
                error = translate(exc, self.path, self.readonly_reason)
                if error is None:
                    raise
                raise error from exc

    return wrapper  # type: ignore[return-value]
