"""The ``[[groups]]``, ``[[constraints]]`` and ``[auto_groups]`` schema of the daemon's
config: selectors and the rules they form (homenode.linux.groups applies them to the
tracked clients; docs/linux.md documents the format)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from homenode.errors import InputError
from homenode.inputs import MAX_NODES, Table
from homenode.linux.kernel.sysfs import parse_cpulist
from homenode.units import MIB

SELECTOR_KINDS = ("cmdline", "name", "cgroup", "pid")
DEFAULT_MIN_SHARED = 64 * MIB   # smaller shared buffers (audio, IPC rings) are not ties
AUTO_PREFIX = "shm:"


@dataclass(frozen=True)
class Selector:
    kind: str
    text: str
    pattern: re.Pattern | None = None

    def matches(self, facts: Facts) -> bool:
        if self.kind == "pid":
            return facts.pid is not None and str(facts.pid) == self.text
        if self.kind == "cmdline":
            return facts.cmdline is not None and bool(self.pattern.search(facts.cmdline))  # type: ignore[union-attr]
        if self.kind == "name":
            return any(self.pattern.fullmatch(n) for n in facts.names if n)  # type: ignore[union-attr]
        path = self.text.strip("/")
        return facts.cgroup is not None and (facts.cgroup == path or
                                             facts.cgroup.startswith(path + "/"))


@dataclass(frozen=True)
class Group:
    name: str
    members: tuple[Selector, ...]


@dataclass(frozen=True)
class Constraint:
    members: tuple[Selector, ...]
    allowed_nodes: frozenset[int] | None = None      # kernel node ids
    prefer_ht: bool = False


@dataclass(frozen=True)
class GroupRules:
    groups: tuple[Group, ...] = ()
    constraints: tuple[Constraint, ...] = ()
    shared_memory: bool = False
    min_shared: int = DEFAULT_MIN_SHARED

    @property
    def needs_cgroup(self) -> bool:
        return any(s.kind == "cgroup" for g in (*self.groups, *self.constraints)
                   for s in g.members)


@dataclass(frozen=True)
class Facts:
    """What selectors look at, for one client."""

    pid: int | None
    cmdline: str | None
    names: tuple[str, ...]
    cgroup: str | None          # cgroup v2 path without the leading "/"


# --- the TOML tables -------------------------------------------------------------------------

def parse_rules(t: Table) -> GroupRules:
    """``[[groups]]``, ``[[constraints]]`` and ``[auto_groups]`` of the config ``t``."""
    groups = []
    seen: set[str] = set()
    for g in t.list("groups"):
        name = g.raw("name", None)
        if not isinstance(name, str) or not name.strip() or name.startswith(AUTO_PREFIX):
            raise g.fail("name", name, f"expected a group name (not starting "
                         f"with {AUTO_PREFIX!r})")
        if name in seen:
            raise g.fail("name", name, "duplicate group name")
        seen.add(name)
        groups.append(Group(name, _members(g)))
        g.done()
    constraints = []
    for c in t.list("constraints"):
        constraints.append(Constraint(_members(c), _nodes(c, "allowed_nodes"),
                                      c.bool("prefer_ht", False)))
        c.done()
    auto = t.sub("auto_groups")
    rules = GroupRules(tuple(groups), tuple(constraints), auto.bool("shared_memory", False),
                       auto.size("min_shared", DEFAULT_MIN_SHARED))
    auto.done()
    return rules


def _members(t: Table) -> tuple[Selector, ...]:
    members = t.raw("members", None)
    if not isinstance(members, list) or not members:
        raise t.fail("members", members, "expected a non-empty list of selectors such as "
                     "'cmdline:REGEX'")
    return tuple(parse_selector(m, t.name(f"members[{j}]"), t.where)
                 for j, m in enumerate(members))


def parse_selector(text: object, name: str, where: str) -> Selector:
    if not isinstance(text, str):
        raise InputError(name, text, "expected a string such as 'cmdline:REGEX'", where)
    kind, sep, arg = text.partition(":")
    if not sep or kind not in SELECTOR_KINDS or not arg:
        raise InputError(name, text, f"expected KIND:VALUE with KIND one of "
                         f"{', '.join(SELECTOR_KINDS)}", where)
    if kind == "pid":
        if not arg.isascii() or not arg.isdigit() or not 1 < int(arg) <= 1 << 22:
            raise InputError(name, text, "expected pid:N with N above 1", where)
        return Selector(kind, str(int(arg)))
    if kind == "cgroup":
        if ".." in arg.split("/") or not arg.strip("/"):
            raise InputError(name, text, "expected a cgroup path such as "
                             "system.slice/db.service", where)
        return Selector(kind, arg.strip("/"))
    try:
        return Selector(kind, arg, re.compile(arg))
    except re.error as e:
        raise InputError(name, text, f"bad regular expression: {e}", where) from None


def _nodes(t: Table, key: str) -> frozenset[int] | None:
    v, name, where = t.raw(key, None), t.name(key), t.where
    if v is None:
        return None
    if isinstance(v, str):
        try:
            nodes = frozenset(parse_cpulist(v))
        except Exception:
            raise InputError(name, v, "expected node ids such as [0, 1] or \"0-1\"",
                             where) from None
    elif isinstance(v, list) and all(isinstance(n, int) and not isinstance(n, bool)
                                     and n >= 0 for n in v):
        nodes = frozenset(v)
    else:
        raise InputError(name, v, "expected node ids such as [0, 1] or \"0-1\"", where)
    if not nodes:
        raise InputError(name, v, "expected at least one node", where)
    if max(nodes) >= MAX_NODES:
        raise InputError(name, v, f"node ids go up to {MAX_NODES - 1}", where)
    return nodes
