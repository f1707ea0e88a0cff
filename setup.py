"""Package list for setuptools: every folder of core/, tui/ and assets/, under kiln_lab.

pyproject.toml holds the project's metadata and the folder mapping; this file only
lists the packages, because a mapped tree (``kiln_lab.core`` -> ``core/``) cannot be
discovered by ``[tool.setuptools.packages.find]``, and a list written by hand would
miss the next sub-package someone adds.
"""

from setuptools import find_namespace_packages, find_packages, setup

code = find_packages(include=["core", "core.*", "tui", "tui.*"])
data = ["profiles", "assets", *(f"assets.{n}" for n in find_namespace_packages(where="assets"))]
setup(packages=[f"kiln_lab.{name}" for name in (*code, *data)])
