"""Kiln's pipeline: everything that builds, runs and measures a model, with no UI.

This package must never import ``textual`` or ``tui``; the import contract in
``pyproject.toml`` and ``tests/core/test_layering.py`` hold it to that.
"""

__version__ = "0.1.0"
