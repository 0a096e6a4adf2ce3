"""The host's CPUs as homenode may use them: online, not isolated, and the nodes that
have memory.  Re-read when the topology changes (or a read of them failed)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from homenode.linux.guard import HOST
from homenode.linux.kernel.errors import ParseError
from homenode.linux.kernel.sysfs import read_isolated_cpus, read_online_cpus
from homenode.model import Topology


class HostCpus:
    def __init__(self, sys_root: Path, warn: Callable[[str, str, str], None]):
        self.sys_root = sys_root
        self.warn = warn
        self.online: frozenset[int] = frozenset()
        self.usable: frozenset[int] = frozenset()     # online and not isolated
        self.mem_nodes: frozenset[int] = frozenset()  # node ids with memory
        self.recheck = False          # a read failed: read again next tick

    def update(self, topo: Topology) -> None:
        self.recheck = False
        node_cpus = frozenset(c for cpus in topo.cpus for c in cpus)
        try:
            online = read_online_cpus(self.sys_root)
            self.online = node_cpus if online is None else online
        except (OSError, ParseError) as e:
            # The nodes' cpulists (just read) list the online CPUs; read again next tick.
            self.warn(HOST, "topology", f"reading the online CPUs failed: {e}")
            self.online, self.recheck = node_cpus, True
        try:
            isolated = read_isolated_cpus(self.sys_root)
        except (OSError, ParseError) as e:
            self.warn(HOST, "topology", f"reading the isolated CPUs failed: {e}")
            isolated, self.recheck = self.online - self.usable, True
        self.usable = self.online - isolated
        self.mem_nodes = frozenset(nid for nid, m in zip(topo.node_ids, topo.mem_pages,
                                                         strict=True) if m > 0)
