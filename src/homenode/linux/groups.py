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
from typing import TYPE_CHECKING, Any, Protocol

from homenode.linux.grouprules import (  # noqa: F401  (the schema, re-exported)
    AUTO_PREFIX,
    DEFAULT_MIN_SHARED,
    SELECTOR_KINDS,
    Constraint,
    Facts,
    Group,
    GroupRules,
    Selector,
    parse_rules,
    parse_selector,
)
from homenode.linux.kernel.errors import SysError
from homenode.linux.kernel.procmaps import read_shared_objects
from homenode.model import Client, Topology

if TYPE_CHECKING:
    from homenode.linux.config import Config


class Tracked(Protocol):
    """What labelling reads and writes on a tracked client (any kind)."""

    id: str
    name: str
    labelled: bool
    group: str
    allowed_nodes: frozenset[int] | None
    prefer_ht: bool
    version: int
    vm_id: str

    def group_facts(self, proc: str, needs_cgroup: bool) -> Facts:
        """What the rules' selectors match on (each kind of client says)."""

    def shm_pid(self) -> int | None:
        """The process whose shared memory mappings may group it; None: never."""


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
        facts = c.group_facts(self.proc, self.rules.needs_cgroup)
        group = next((g.name for g in self.rules.groups
                      if any(s.matches(facts) for s in g.members)), "")
        rule = next((r for r in self.rules.constraints
                     if any(s.matches(facts) for s in r.members)), None)
        if group:
            self._explicit.add(c.id)
        _relabel(c, group=group or c.group,
                 allowed_nodes=rule.allowed_nodes if rule else None,
                 prefer_ht=rule.prefer_ht if rule else False)

    def _shared_memory(self, tracked: list[Tracked]) -> None:
        """Group processes mapping the same shared memory object (union-find)."""
        owners: dict[tuple[str, int], list[Tracked]] = {}
        names: dict[tuple[str, int], str] = {}
        candidates = [c for c in tracked if c.shm_pid() is not None
                      and c.id not in self._explicit]
        for c in candidates:
            try:
                objs = read_shared_objects(self.proc, c.shm_pid() or 0, self.rules.min_shared)
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
