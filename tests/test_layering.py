"""The engine knows no screen: importing imapcrypt (and its CLI) loads no Qt module."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

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


# The core's parts from the ground up: a module may import its own layer and the layers below it,
# never one above. Each name is a top-level module or subpackage of imapcrypt.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"errors", "events", "private", "loopback"}),
    frozenset({"openpgp"}),
    frozenset({"message"}),
    frozenset({"config"}),
    frozenset({"journal", "lock", "logs", "secrets", "autostart"}),
    frozenset({"keys"}),
    frozenset({"imap"}),
    frozenset({"engine"}),
    frozenset({"wiring"}),
    frozenset({"daemon", "reader", "serve", "doctor", "demo", "setup"}),
    frozenset({"api"}),
    frozenset({"cli", "__main__"}),
)


def _core_imports() -> dict[str, set[str]]:
    """Every imapcrypt module (dotted name) and the imapcrypt modules it imports."""
    root = Path(imapcrypt.__file__).parent
    found: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = _imapcrypt_imports(path)
    return found


def _imapcrypt_imports(path: Path) -> set[str]:
    """The imapcrypt modules a file imports (a name imported from `imapcrypt` itself counts as one)."""
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "imapcrypt":
                targets |= {f"imapcrypt.{alias.name}" for alias in node.names}
            elif node.module.startswith("imapcrypt."):
                targets.add(node.module)
        elif isinstance(node, ast.Import):
            targets |= {a.name for a in node.names if a.name.split(".")[0] == "imapcrypt"}
    return targets


def _layer(module: str) -> int:
    part = module.split(".")[1] if "." in module else ""
    for index, layer in enumerate(LAYERS):
        if part in layer:
            return index
    return -1 if part in {"", "__version__"} else 99


def test_every_core_module_has_a_layer() -> None:
    unplaced = sorted(m for m in _core_imports() if _layer(m) == 99)
    assert unplaced == [], "give these modules a layer in LAYERS"


def test_no_core_module_imports_upward() -> None:
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in _core_imports().items()
        for target in targets
        if _layer(target) > _layer(module)
    )
    assert upward == []


def test_core_imports_have_no_circle() -> None:
    graph = _core_imports()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str]:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done or module not in graph:
            return []
        for target in sorted(graph[module]):
            circle = visit(target, [*path, module])
            if circle:
                return circle
        done.add(module)
        return []

    circles = [c for c in (visit(m, []) for m in sorted(graph)) if c]
    assert circles == []


# What the tray app (ui/) may import of the core: its one door and the set-up flow, the events it
# shows, the errors it catches, and the version.
UI_MAY_IMPORT = frozenset(
    {"imapcrypt.api", "imapcrypt.setup", "imapcrypt.events", "imapcrypt.errors", "imapcrypt.__version__"}
)


def _ui_imports() -> dict[str, set[str]]:
    """Every ui/*.py file and the imapcrypt modules (or names imported from `imapcrypt`) it uses."""
    root = Path(imapcrypt.__file__).parent.parent / "ui"
    return {path.name: _imapcrypt_imports(path) for path in sorted(root.glob("*.py"))}


def test_the_ui_reaches_the_core_only_through_its_door() -> None:
    imports = _ui_imports()
    assert "wizard.py" in imports  # the walk found the tray app's files
    around = sorted(f"{name} -> {t}" for name, targets in imports.items() for t in targets - UI_MAY_IMPORT)
    assert around == [], "the UI imports the core only through imapcrypt.api and imapcrypt.setup"


def test_the_door_names_what_it_exports() -> None:
    from imapcrypt import api  # noqa: PLC0415 - the subject of this test

    assert sorted(api.__all__) == sorted(set(api.__all__))
    assert all(hasattr(api, name) for name in api.__all__)


def test_every_core_package_is_in_the_distribution() -> None:
    """A subpackage left out of pyproject's list installs as nothing: the wheel's CLI would not start."""
    root = Path(imapcrypt.__file__).parent
    found = {".".join(p.parent.relative_to(root.parent).parts) for p in root.rglob("__init__.py")} | {
        "imapcrypt_ui"
    }
    listed = set(
        tomllib.loads((root.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    assert sorted(found - listed) == []
