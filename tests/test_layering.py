"""The engine knows no screen: importing imapcrypt (and its CLI) loads no Qt module."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import imapcrypt


def test_imapcrypt_imports_no_qt() -> None:
    modules = [
        m.name
        for m in pkgutil.walk_packages(imapcrypt.__path__, "imapcrypt.")
        if m.name != "imapcrypt.__main__"  # running it is the CLI, not an import
    ]
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded = json.loads(
        subprocess.run([sys.executable, "-c", script], check=True, capture_output=True).stdout
    )
    assert "imapcrypt.cli.main" in loaded
    assert not [m for m in loaded if m.startswith(("PySide6", "PyQt", "shiboken", "imapcrypt_ui"))]
