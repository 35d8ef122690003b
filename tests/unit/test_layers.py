"""The layers, checked from the source: imports run one way.

- the domain (``ledger/domain``, ``ledger/events.py``, ``ledger/times.py``) imports no
  I/O: not the application, the stores, the read models, nor the CLI;
- ``projections/`` has no import circle (lazy imports inside functions count too);
- ``projections/`` reads the ledger through ``Ledger``'s public reading API, never its
  recorder, index or mapper.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = sorted((ROOT / "ledger" / "domain").glob("*.py"))
PROJECTIONS = sorted((ROOT / "projections").glob("*.py"))


def imported(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return out


@pytest.mark.parametrize("path", DOMAIN, ids=lambda p: p.name)
def test_the_domain_does_no_io(path: Path) -> None:
    io = ("ledger.app", "ledger.store", "ledger.projections", "ledger.cli", "eventsourcing")
    found = sorted(m for m in imported(path) if m.startswith(io))
    assert not found, found


def projection_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    names = {p.stem for p in PROJECTIONS}
    for path in PROJECTIONS:
        deps = set()
        for module in imported(path):
            parts = module.split(".")
            if parts[:2] == ["ledger", "projections"] and len(parts) > 2 and parts[2] in names:
                deps.add(parts[2])
        graph[path.stem] = deps - {path.stem}
    return graph


def test_projections_import_one_way() -> None:
    graph = projection_graph()
    circles = []

    def visit(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                circles.append(" -> ".join([*path, start]))
            elif nxt not in path:
                visit(start, nxt, [*path, nxt])

    for module in sorted(graph):
        visit(module, module, [module])
    assert not circles, circles


@pytest.mark.parametrize("path", PROJECTIONS, ids=lambda p: p.name)
def test_projections_read_the_ledger_through_its_public_api(path: Path) -> None:
    text = path.read_text()
    for private in ("app.index", "app.recorder", "msgspec_mapper", "app.mapper", "_views_store"):
        assert private not in text, f"{path.name} uses {private}"
