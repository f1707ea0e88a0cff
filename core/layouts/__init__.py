"""The vendor tools' file layouts, one module each, in a registry keyed by profile name.

A profile's ``infer`` step names its layout (``infer.inputs.layout``); the external
runtime writes the evaluation inputs through it, runs the vendor tool and reads the
outputs back through it, by file name. A new tool's layout is one new module with a
:class:`~kiln_lab.core.layouts.base.Layout` subclass plus its entry in
:data:`LAYOUTS`. Importing this package imports no vendor library.
"""

from __future__ import annotations

from kiln_lab.core.errors import ConfigError
from kiln_lab.core.layouts.ais_bench import AisBenchLayout
from kiln_lab.core.layouts.base import Layout
from kiln_lab.core.layouts.checks import Item
from kiln_lab.core.layouts.npz_list import NpzListLayout
from kiln_lab.core.layouts.polygraphy_json import PolygraphyJsonLayout

__all__ = ["LAYOUTS", "Item", "Layout", "get_layout"]

LAYOUTS: dict[str, Layout] = {
    layout.name: layout for layout in (NpzListLayout(), AisBenchLayout(), PolygraphyJsonLayout())
}


def get_layout(name: str) -> Layout:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ConfigError(
            f"unknown file layout {name!r}", hint=f"known layouts: {', '.join(sorted(LAYOUTS))}"
        ) from None
