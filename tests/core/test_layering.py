"""The headless promise: ``core`` and the command line never load Textual or the app.

Checked in fresh interpreters, because the test session itself has long since imported
Textual. Every module of ``kiln_lab.core`` is imported, found by walking the package
(``pkgutil.walk_packages``), so a module added tomorrow is covered without editing a list;
the walk is compared with the ``.py`` files on disk so that a package it silently failed
to enter cannot shrink the check. The import contract in ``pyproject.toml``
(``lint-imports``) says the same statically; this test also catches imports made by
third-party packages and by code that runs at import time.
"""

from __future__ import annotations

import json
import subprocess
import sys

COMMAND_LINE = [
    "kiln_lab.tui.cli",
    "kiln_lab.tui.commands.run",
    "kiln_lab.tui.commands.history",
    "kiln_lab.tui.commands.catalogue",
    "kiln_lab.tui.commands.console",
    "kiln_lab.tui.commands.finetune",
    "kiln_lab.tui.commands.kiln_bench",
    # what the headless commands import on demand (tables, following a run, doctor)
    "kiln_lab.tui.render",
    "kiln_lab.tui.follow",
    "kiln_lab.tui.doctor_view",
]

IMPORT_ALL_OF_CORE = """
import importlib, json, pkgutil, sys
from pathlib import Path

import kiln_lab.core as core

def stop(name):
    raise ImportError(f"could not import package {name} while walking kiln_lab.core")

root = Path(core.__file__).parent
def module_name(path):
    parts = ("kiln_lab", "core", *path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

on_disk = sorted(module_name(p) for p in root.rglob("*.py") if "__pycache__" not in p.parts)
walked = [m.name for m in pkgutil.walk_packages(core.__path__, "kiln_lab.core.", onerror=stop)]
for name in walked:
    importlib.import_module(name)
loaded = sorted(
    m for m in sys.modules if m.split(".")[0] == "textual" or m.startswith("kiln_lab.tui")
)
print(json.dumps({"on_disk": on_disk, "walked": walked, "loaded": loaded}))
"""


def _fresh_python(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_every_core_module_imports_without_textual_or_tui() -> None:
    found = json.loads(_fresh_python(IMPORT_ALL_OF_CORE))
    walked = set(found["walked"])
    # Every module file on disk was imported: the walk cannot silently skip a package.
    missing = [m for m in found["on_disk"] if m not in walked and m != "kiln_lab.core"]
    assert not missing, f"modules the walk did not import: {missing}"
    assert {"kiln_lab.core.pipeline", "kiln_lab.core.worker", "kiln_lab.core.stages"} <= walked
    assert len(walked) > 40
    assert found["loaded"] == [], "core pulled in the UI"


def test_command_line_modules_do_not_load_textual() -> None:
    code = (
        "import importlib, sys\n"
        f"for m in {COMMAND_LINE!r}: importlib.import_module(m)\n"
        "from kiln_lab.tui.cli import build_parser\n"
        "build_parser()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))\n"
    )
    assert _fresh_python(code).strip() == "[]"
