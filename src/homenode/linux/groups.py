"""Labels the policy reads on a Linux host: affinity groups and node constraints.

Configured in TOML (docs/linux.md, "Affinity groups and node constraints"):

```toml
[[groups]]                      # clients that communicate: drawn to one node
name = "web"
members = ["cmdline:nginx", "cgroup:system.slice/redis.service", "name:db1", "pid:4242"]

[[constraints]]                 # like numa.nodeAffinity / numa.vcpu.preferHT
members = ["name:vm7"]
allowed_nodes = [0, 1]          # kernel node ids ("0-1" also accepted)
prefer_ht = true

[auto_groups]
shared_memory = true            # processes that map the same shared memory object
min_shared = "64MiB"            #   (at least this much of it) form a group
```

Selectors: ``cmdline:REGEX`` searches a process's command line (arguments joined by
spaces); ``name:REGEX`` must match a client's whole name (a VM's guest name also selects
all its vNUMA slices); ``cgroup:PATH`` selects that cgroup client and every process in
it or below it; ``pid:N`` one process.  The first ``[[groups]]`` (and the first
``[[constraints]]``) a client matches wins.  Selectors are matched once per client, when
it is first seen.

Automatic groups: every ``scan_interval`` the writable *shared* mappings of each process
client are read from /proc/PID/maps; processes that map one object (same device and
inode: POSIX shm under /dev/shm, memfd, SysV shm, shared anonymous memory inherited over
fork) of at least ``min_shared`` are put in one group, named after the object.  The
slices of a VM split by guest NUMA and clients of a declared group take no part.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from homenode.errors import InputError
from homenode.inputs import MAX_NODES, Table
from homenode.linux import procfs
from homenode.linux.errors import SysError
from homenode.linux.sysfs import parse_cpulist
from homenode.model import Client, Topology
from homenode.units import MIB

if TYPE_CHECKING:
    from homenode.linux.clients import Tracked
    from homenode.linux.config import Config

SELECTOR_KINDS = ("cmdline", "name", "cgroup", "pid")
DEFAULT_MIN_SHARED = 64 * MIB   # smaller shared buffers (audio, IPC rings) are not ties
# Shared mappings that are memory (not files on disk): POSIX shm, memfd, SysV shm, and
# MAP_SHARED|MAP_ANONYMOUS (shown as /dev/zero).
SHM_PATHS = ("/dev/shm/", "/memfd:", "/SYSV", "/dev/zero")
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


# --- labelling the tracked clients -----------------------------------------------------------

class Labeler:
    """Sets ``group``, ``allowed_nodes`` and ``prefer_ht`` on tracked clients (their
    model's version is bumped when a label changes)."""

    def __init__(self, cfg: Config, proc: str):
        self.rules: GroupRules = cfg.groups
        self.proc = proc
        self.interval = cfg.daemon.scan_interval
        self._shm_at = -math.inf
        self._explicit: set[str] = set()      # client ids in a declared group

    def update(self, tracked: list[Tracked], now: float) -> None:
        new = [c for c in tracked if not c.labelled]
        for c in new:
            self._static(c)
        if self.rules.shared_memory and (new or now - self._shm_at >= self.interval):
            self._shm_at = now
            self._shared_memory(tracked)

    def _static(self, c: Tracked) -> None:
        c.labelled = True
        if not (self.rules.groups or self.rules.constraints):
            return
        facts = self._facts(c)
        group = next((g.name for g in self.rules.groups
                      if any(s.matches(facts) for s in g.members)), "")
        rule = next((r for r in self.rules.constraints
                     if any(s.matches(facts) for s in r.members)), None)
        if group:
            self._explicit.add(c.id)
        _relabel(c, group=group or c.group,
                 allowed_nodes=rule.allowed_nodes if rule else None,
                 prefer_ht=rule.prefer_ht if rule else False)

    def _facts(self, c: Tracked) -> Facts:
        pid = getattr(c, "pid", None)
        names = (c.name, getattr(c, "vm_name", ""))
        if pid is None:                                    # a cgroup client
            return Facts(None, None, names, getattr(c, "rel", None))
        argv = getattr(c, "argv", ())
        cmdline = " ".join(argv) if argv else None
        if cmdline is None:
            try:
                cmdline = " ".join(procfs.read_cmdline(self.proc, pid))
            except SysError:
                cmdline = None
        cg = None
        if self.rules.needs_cgroup:
            try:
                cg = (procfs.read_cgroup_v2_path(self.proc, pid) or "").strip("/")
            except SysError:
                cg = None
        return Facts(pid, cmdline, names, cg)

    def _shared_memory(self, tracked: list[Tracked]) -> None:
        """Group processes mapping the same shared memory object (union-find)."""
        owners: dict[tuple[str, int], list[Tracked]] = {}
        names: dict[tuple[str, int], str] = {}
        candidates = [c for c in tracked if getattr(c, "pid", None) is not None
                      and not getattr(c, "guest_node", None) and c.id not in self._explicit]
        for c in candidates:
            try:
                path = f"{self.proc}/{c.pid}/maps"  # type: ignore[attr-defined]
                objs = shared_objects(procfs.read_bytes(path, f"read {path}"),
                                      self.rules.min_shared)
            except SysError:
                continue
            for key, name in objs.items():
                owners.setdefault(key, []).append(c)
                names[key] = name
        parent = {c.id: c.id for c in candidates}

        def find(x: str) -> str:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        shared = [k for k in sorted(owners) if len({c.id for c in owners[k]}) >= 2]
        for key in shared:
            ids = sorted({c.id for c in owners[key]})
            for other in ids[1:]:
                parent[find(other)] = find(ids[0])
        label: dict[str, tuple[str, int]] = {}
        for key in shared:                       # sorted: the smallest key names a group
            label.setdefault(find(owners[key][0].id), key)
        for c in candidates:
            key = label.get(find(c.id))
            want = f"{AUTO_PREFIX}{names[key]}@{key[1]}" if key else ""
            if c.group != want and (not c.group or c.group.startswith(AUTO_PREFIX)):
                _relabel(c, group=want)


def _relabel(c: Tracked, **values: Any) -> None:
    if any(getattr(c, k) != v for k, v in values.items()):
        for k, v in values.items():
            setattr(c, k, v)
        c.version += 1


def shared_objects(data: bytes | str, min_size: int) -> dict[tuple[str, int], str]:
    """/proc/PID/maps: the shared memory objects mapped writable and shared, with at
    least ``min_size`` bytes mapped: (device, inode) -> path."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    size: dict[tuple[str, int], int] = {}
    path: dict[tuple[str, int], str] = {}
    for line in data.splitlines():
        f = line.split(None, 5)
        if len(f) < 6 or len(f[1]) < 4 or f[1][1] != "w" or f[1][3] != "s":
            continue
        name = f[5].removesuffix(" (deleted)")
        if not name.startswith(SHM_PATHS):
            continue
        lo, _, hi = f[0].partition("-")
        try:
            key = (f[3], int(f[4]))
            size[key] = size.get(key, 0) + int(hi, 16) - int(lo, 16)
        except ValueError:
            continue
        path[key] = name
    return {k: path[k] for k, n in size.items() if n >= min_size}


def with_labels(model: Client, c: Tracked, topo: Topology) -> Client:
    """The policy's ``Client`` with the tracked client's labels (node ids -> indices)."""
    allowed = None
    if c.allowed_nodes is not None:
        allowed = frozenset(topo.index(n) for n in c.allowed_nodes if n in topo.node_ids)
        allowed = allowed or None        # none of them exists: no constraint
    if not (c.vm_id or c.group or allowed or c.prefer_ht):
        return model
    return dataclasses.replace(model, vm=c.vm_id, affinity_group=c.group,
                               allowed_nodes=allowed, prefer_ht=c.prefer_ht)
