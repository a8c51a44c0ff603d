"""The package's layering: no import cycle between mvstylizer's subpackages.

Each subpackage (``edge``, ``mobile``, ``fl``...) and each top-level module (``wire``, ``cli``,
``errors``...) is one node; ``a -> b`` when any module of ``a`` imports from ``b``, at the top or inside
a function (a lazy import is still a dependency). Imports under ``if TYPE_CHECKING:`` are left out:
they never run, and the package's own ``__init__`` names its lazy re-exports that way.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "mvstylizer"
ROOT = "mvstylizer"  # the node of the package's own __init__ (``from .. import __version__``)

# Edges left in place, each closing a cycle outside what has been untangled so far. Remove an entry
# with the edge; test_known_exceptions_are_still_needed fails once one is gone.
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()


def _node(parts: list[str]) -> str:
    return parts[0] if parts else ROOT


def _exists(parts: list[str]) -> bool:
    path = SRC.joinpath(*parts)
    return path.is_dir() or path.with_suffix(".py").is_file()


def _type_checking_only(tree: ast.Module) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skipped


def _targets(node: ast.AST, package: list[str]) -> list[list[str]]:
    """The imported modules of ``node``, as parts under mvstylizer (``[]``: mvstylizer itself)."""
    if isinstance(node, ast.Import):
        return [a.name.split(".")[1:] for a in node.names if a.name.split(".")[0] == ROOT]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = package[: len(package) - (node.level - 1)]
        module = base + (node.module.split(".") if node.module else [])
    elif node.module and node.module.split(".")[0] == ROOT:
        module = node.module.split(".")[1:]
    else:
        return []
    # ``from . import wire`` imports a module; ``from .. import __version__`` a name of the package
    return [module + [a.name] if _exists(module + [a.name]) else module for a in node.names]


def import_graph() -> dict[str, dict[str, str]]:
    """node -> {imported node: where (file:line of the first such import)}."""
    graph: dict[str, dict[str, str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        package = parts[:-1]  # what a relative import is relative to, for a module and an __init__ alike
        source = _node(parts[:-1] if parts[-1] == "__init__" else parts)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = _type_checking_only(tree)
        edges = graph.setdefault(source, {})
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            for target in _targets(node, package):
                dest = _node(target)
                if dest != source:
                    edges.setdefault(dest, f"{path.relative_to(SRC)}:{node.lineno}")
    return graph


def find_cycle(graph: dict[str, dict[str, str]]) -> list[str] | None:
    """One cycle as a path of nodes (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)) is not None:
            return found
    return None


def _describe(cycle: list[str], graph: dict[str, dict[str, str]]) -> str:
    steps = (f"  {a} -> {b}: {graph[a][b]}" for a, b in zip(cycle, cycle[1:], strict=False))
    return " -> ".join(cycle) + "\n" + "\n".join(steps)


def test_no_import_cycle_between_subpackages():
    graph = import_graph()
    for a, b in KNOWN_EXCEPTIONS:
        graph.get(a, {}).pop(b, None)
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle between subpackages:\n{_describe(cycle, graph)}"


def test_known_exceptions_are_still_needed():
    graph = import_graph()
    gone = sorted((a, b) for a, b in KNOWN_EXCEPTIONS if b not in graph.get(a, {}))
    assert not gone, f"no longer imported, remove from KNOWN_EXCEPTIONS: {gone}"


def test_the_graph_sees_lazy_relative_and_package_imports():
    graph = import_graph()
    assert "edge" in graph["mobile"]  # edge_link's in-process edge: a lazy import inside a method
    assert "wire" in graph["mobile"]  # from ..wire import ...
    assert ROOT in graph["edge"]  # from ... import __version__
    assert "api" not in graph.get(ROOT, {})  # the package's lazy re-exports are TYPE_CHECKING-only
