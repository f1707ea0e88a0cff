"""One error hierarchy for everything Kiln reports to an operator.

Every error carries a short title, a message that names what went wrong (and where:
a file, a line, a key), and a fix hint. The CLI prints all three to stderr and exits
non-zero; the app shows them in a modal. Anything that is not a ``KilnError`` is a
bug in Kiln, and only then does a traceback reach the operator.
"""

from __future__ import annotations

from pathlib import Path


class KilnError(Exception):
    """Base class: an expected failure with a clear explanation and a fix."""

    title = "Kiln error"
    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        path: str | Path | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.path = str(path) if path is not None else None
        self.line = line

    @property
    def location(self) -> str | None:
        """``file:line`` (or just the file) the error is about, if any."""
        if self.path is None:
            return None
        return f"{self.path}:{self.line}" if self.line is not None else self.path

    def one_line(self) -> str:
        """The whole error on one line, as the CLI prints it."""
        where = f"{self.location}: " if self.location else ""
        hint = f" (fix: {self.hint})" if self.hint else ""
        return f"{self.title}: {where}{self.message}{hint}"

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": type(self).__name__,
            "title": self.title,
            "message": self.message,
            "hint": self.hint,
            "path": self.path,
            "line": self.line,
        }

    def __str__(self) -> str:
        return self.one_line()


class ConfigError(KilnError):
    title = "Invalid configuration"


class DataError(KilnError):
    title = "Invalid data"


class LabelMismatch(DataError):
    title = "Label set mismatch"


class TaskMismatch(DataError):
    """The file is for another task than the model (pairs for a single-text classifier)."""

    title = "Task mismatch"


class ModelNotFound(KilnError):
    title = "Model weights not found"


class ModelLoadError(KilnError):
    title = "Model could not be loaded"


class ExportError(KilnError):
    title = "Export failed"


class DiskFull(KilnError):
    title = "Disk full"


class ParityError(KilnError):
    title = "Parity check failed"


class ToolchainMissing(KilnError):
    title = "Toolchain not available"


class RuntimeFailure(KilnError):
    title = "Runtime failed"


class ToolOutputError(RuntimeFailure):
    """An inference tool's output files are missing, extra, unreadable or misshapen.

    Raised instead of scoring whatever happens to be there: a silent zero or a shifted
    file would pass as a (wrong) accuracy figure.
    """

    title = "Inference tool output unusable"


class StoreError(KilnError):
    title = "Run store problem"


class RunNotFound(StoreError):
    title = "Run not found"


class MatrixNotFound(StoreError):
    title = "Matrix not found"


class ClusterError(KilnError):
    """A Ray cluster that cannot be reached, or a cell it cannot run."""

    title = "Cluster problem"


class Cancelled(KilnError):
    title = "Run cancelled"
    exit_code = 130


def internal_error(exc: BaseException, *, traceback_at: str | None = None) -> dict[str, str]:
    """An unexpected exception in the error form runs store: a Kiln bug, said so.

    ``traceback_at`` names where the traceback was logged when that is not the run's
    log (the app logs its own to a file).
    """
    hint = (
        f"this is a bug in Kiln; the traceback is in {traceback_at}"
        if traceback_at
        else "this is a bug in Kiln; rerun with --debug (the traceback is in the run's "
        "log) and report it"
    )
    return {
        "kind": type(exc).__name__,
        "title": "Internal error",
        "message": f"{type(exc).__name__}: {exc}",
        "hint": hint,
    }
