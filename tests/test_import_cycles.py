"""The import graph of src/homenode has no cycle (issue 14).

Every import counts: at the top of a module, deferred inside a function, and those
under ``if TYPE_CHECKING:`` (which never run, but still say that one module is written
in terms of the other).  A cycle hidden in a function or behind TYPE_CHECKING still ties
the modules together -- neither can be understood, tested or changed alone -- so hiding
it is not a fix.  A package's ``__init__`` importing its
own submodules is how Python loads a package, not an edge back to it.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, Path]:
    out = {}
    for p in (SRC / "homenode").rglob("*.py"):
        parts = p.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


class _Imports(ast.NodeVisitor):
    def __init__(self, name: str, package: str, known: set[str], is_package: bool):
        self.name, self.package, self.known = name, package, known
        self.is_package = is_package
        self.depth = 0                     # > 0 inside a function: a deferred import
        self.found: set[str] = set()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self._add(a.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            parts = self.package.split(".")
            parts = parts[: len(parts) - node.level + 1]
            base = ".".join([*parts, *([node.module] if node.module else [])])
        for a in node.names:
            sub = f"{base}.{a.name}"
            self._add(sub if sub in self.known else base)

    def _add(self, mod: str) -> None:
        # ``import a.b.c`` also runs a and a.b: the nearest known module is the target.
        while mod and mod not in self.known:
            mod = mod.rpartition(".")[0]
        if not mod or mod == self.name:
            return
        # A package's __init__ loading its own submodules at import time is how a
        # package re-exports; a deferred one (a registry filled later) is a real edge.
        if self.is_package and mod.startswith(self.name + ".") and self.depth == 0:
            return
        self.found.add(mod)


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    graph = {}
    for name, path in mods.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        v = _Imports(name, package, known, is_package)
        v.visit(ast.parse(path.read_text()))
        graph[name] = v.found
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_is_read():
    g = import_graph()
    assert "homenode.sim.host" in g and "homenode.sim.scenario" in g["homenode.sim.host"]
    # deferred (function-level) and TYPE_CHECKING imports count too
    assert "homenode.linux.config" in g["homenode.cli.linux"]
    assert "homenode.linux.config" in g["homenode.linux.groups"]


def test_cycles_are_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles in src/homenode:\n" + "\n".join(
        " <-> ".join(c) for c in found)
