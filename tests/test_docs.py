"""The docs stay true to the tree: every module listed, every link and cited file present."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tracked(*patterns: str) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", *patterns], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    return [line for line in listed.splitlines() if (ROOT / line).exists()]


def test_architecture_lists_every_module_and_no_other() -> None:
    modules = {f for f in _tracked("imapcrypt/*.py", "ui/*.py") if not f.endswith("__init__.py")} | {
        str(p.relative_to(ROOT)) for p in ROOT.glob("imapcrypt/**/*.py") if p.name != "__init__.py"
    }
    table = set(
        re.findall(
            r"^\| `((?:imapcrypt|ui)/[\w/]+\.py)` \|", (ROOT / "docs/architecture.md").read_text(), re.M
        )
    )
    assert sorted(modules - table) == [], "add these modules to docs/architecture.md"
    assert sorted(table - modules) == [], "these modules in docs/architecture.md do not exist"


def test_markdown_links_point_at_files_that_exist() -> None:
    broken = []
    for doc in _tracked("*.md"):
        text = (ROOT / doc).read_text()
        for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", text):
            if "://" not in target and not (ROOT / doc).parent.joinpath(target).exists():
                broken.append(f"{doc} -> {target}")
    assert broken == []


def test_no_file_cites_a_document_outside_the_repository() -> None:
    citing = []
    for name in _tracked("*.py", "*.md", "*.toml", "Makefile", "*.sh"):
        text = (ROOT / name).read_text(errors="replace")
        if re.search(r"\bDESIGN(\.md)? §|\bSTYLE(\.md)?\b[: ]|\.\./shared/", text):
            citing.append(name)
    assert citing == []
