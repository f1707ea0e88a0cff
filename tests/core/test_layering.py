"""core must never import the UI: checked in a fresh interpreter."""

import subprocess
import sys

MODULES = [
    "kiln_lab.core.pipeline",
    "kiln_lab.core.stages",
    "kiln_lab.core.store",
    "kiln_lab.core.worker",
    "kiln_lab.core.launcher",
    "kiln_lab.core.models",
    "kiln_lab.core.profiles",
    "kiln_lab.core.runtimes",
    "kiln_lab.core.export",
    "kiln_lab.core.evaluate",
    "kiln_lab.core.data",
    "kiln_lab.core.metrics",
]


def test_core_does_not_import_textual_or_tui() -> None:
    code = (
        "import sys, importlib\n"
        f"for m in {MODULES!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules\n"
        "             if m.split('.')[0] in ('textual', 'tui'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_headless_cli_does_not_load_textual() -> None:
    code = (
        "import sys\n"
        "from kiln_lab.tui.cli import build_parser\n"
        "build_parser()\n"
        "print('textual' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
