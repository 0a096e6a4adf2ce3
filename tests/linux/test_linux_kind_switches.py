"""No code outside the client kinds asks which kind a client is (issue 14).

Variation by kind lives in one class or module per kind (homenode.linux.kinds, and the
client classes in clients.py and vmslice.py); everything else asks the client or its kind.
This reads the AST of src/homenode and fails on an ``isinstance``/``issubclass`` or a
``type(x) is/==`` test against a client class, and on a ``getattr``/``hasattr`` probe for
an attribute only some kinds have -- the duck-typed form of the same switch.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "homenode"
CLIENT_CLASSES = {"Tracked", "ProcessClient", "CgroupClient", "VmSlice"}
# Where the kinds themselves are written.
KIND_MODULES = {"linux/kinds", "linux/clients.py", "linux/vmslice.py"}
# Attributes that exist on some client kinds only.
KIND_ONLY_ATTRS = {"pid", "start", "rel", "path", "guest_node", "guest", "vm_name", "argv",
                   "procs", "uses_cpuset", "tids", "vmas"}


def _names(node: ast.AST) -> set[str]:
    return {n.id if isinstance(n, ast.Name) else n.attr
            for n in ast.walk(node) if isinstance(n, ast.Name | ast.Attribute)}


def _switches(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            fn, args = node.func.id, node.args
            if fn in ("isinstance", "issubclass") and len(args) == 2 and \
                    _names(args[1]) & CLIENT_CLASSES:
                out.append((node.lineno, ast.unparse(node)))
            if fn in ("getattr", "hasattr") and len(args) >= 2 and \
                    isinstance(args[1], ast.Constant) and args[1].value in KIND_ONLY_ATTRS:
                out.append((node.lineno, ast.unparse(node)))
        if isinstance(node, ast.Compare) and any(
                isinstance(op, ast.Is | ast.IsNot | ast.Eq | ast.NotEq) for op in node.ops):
            sides = [node.left, *node.comparators]
            typed = any(isinstance(s, ast.Call) and isinstance(s.func, ast.Name)
                        and s.func.id == "type" for s in sides)
            if typed and any(_names(s) & CLIENT_CLASSES for s in sides):
                out.append((node.lineno, ast.unparse(node)))
    return out


def _in_kind_module(rel: str) -> bool:
    return any(rel == k or rel.startswith(k + "/") for k in KIND_MODULES)


def test_no_kind_switch_outside_the_kind_modules():
    found = []
    for p in sorted(SRC.rglob("*.py")):
        rel = p.relative_to(SRC).as_posix()
        if _in_kind_module(rel):
            continue
        for line, text in _switches(ast.parse(p.read_text(), str(p))):
            found.append(f"{rel}:{line}: {text}")
    assert not found, "kind switches outside the kind modules:\n" + "\n".join(found)


def test_the_check_finds_a_switch():
    """The check itself can fail: each form of switch is caught."""
    code = ("def f(c):\n"
            "    if isinstance(c, ProcessClient | CgroupClient): pass\n"
            "    if type(c) is VmSlice: pass\n"
            "    return getattr(c, 'pid', None)\n")
    assert len(_switches(ast.parse(code))) == 3


def test_every_kind_is_registered():
    """A new kind is a module in linux/kinds plus its line in the registry."""
    from homenode.linux import kinds
    from homenode.linux.clients import CgroupClient, ProcessClient
    from homenode.linux.vmslice import VmSlice

    assert set(kinds._KINDS) == {ProcessClient, CgroupClient, VmSlice}
    for cls, kind in kinds._KINDS.items():
        assert type(kind).__module__.startswith("homenode.linux.kinds."), cls
