"""A pane that cannot draw shows why, in red, instead of taking the app down."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from rich.text import Text

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def guarded(render: F) -> F:
    @wraps(render)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return render(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - drawing must never end the app
            log.exception("drawing %s failed", type(self).__name__)
            return Text(f"cannot draw: {type(exc).__name__}: {exc}", style="red")

    return wrapper  # type: ignore[return-value]
