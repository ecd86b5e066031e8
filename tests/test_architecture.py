"""Layers import downwards only, in the order of docs/architecture.md."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "blockrecon"


def documented_order() -> list[str]:
    """Top-level modules in the order of the table in docs/architecture.md."""
    order = []
    for line in (ROOT / "docs" / "architecture.md").read_text().splitlines():
        if line.startswith("| `"):
            cell = line.split("|")[1]
            order += [name.rstrip("/") for name in re.findall(r"`([a-z_/]+)`", cell)]
    return order


def imports_of(path: Path) -> set[str]:
    """Top-level blockrecon modules that ``path`` imports, relative imports resolved."""
    package = ["blockrecon", *path.relative_to(PACKAGE).parts[:-1]]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = [*base, *(node.module.split(".") if node.module else [])]
            names = [".".join(module)] + [".".join([*module, a.name]) for a in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {
            n.split(".")[1]
            for n in names
            if n.startswith("blockrecon.") and not n.split(".")[1].startswith("__")
        }
    return found


def test_every_module_is_documented_and_imports_only_from_above():
    order = documented_order()
    rank = {name: index for index, name in enumerate(order)}
    modules = {
        p.stem if p.is_file() else p.name
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" or (p / "__init__.py").exists())
        and p.stem not in ("__init__", "__main__")
    }
    assert modules == set(order), (modules - set(order), set(order) - modules)
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        own = parts[0]
        if own in ("__init__", "__main__"):
            continue
        for other in imports_of(path) - {own}:
            assert other in rank and rank[other] < rank[own], f"{path}: imports blockrecon.{other}"
