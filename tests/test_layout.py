"""The folders show the architecture: these import rules keep it so (issue 11).

Ingest (aggregator/reader, aggregator/store) never imports the publishing or web side; the
services never import each other; the shared library imports neither service.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# (package whose modules are checked, module prefixes they must not import)
RULES = [
    ("aggregator/reader", ("aggregator.publish", "aggregator.web", "node")),
    ("aggregator/store", ("aggregator.publish", "aggregator.web", "aggregator.reader.refresh")),
    ("aggregator/publish", ("aggregator.web", "node")),
    ("aggregator", ("node",)),
    ("node", ("aggregator",)),
    ("klynge", ("node", "aggregator")),
]


def imported(path: Path) -> set[str]:
    """Return every module name that `path` imports (absolute imports only)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def violations(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    """Return `file: module` for each forbidden import below `folder`."""
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for name in sorted(imported(path)):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(ROOT)}: {name}")
    return found


@pytest.mark.parametrize(("folder", "forbidden"), RULES, ids=[r[0] for r in RULES])
def test_imports_follow_the_layout(folder: str, forbidden: tuple[str, ...]) -> None:
    assert violations(folder, forbidden) == []


def test_the_rule_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from aggregator.web.pages import x\nimport node.store\n")
    assert imported(module) >= {"aggregator.web.pages", "node.store"}
