"""What the policy sees of the tracked clients: ``Client`` models and the ``Snapshot``.

Kernel node ids become node *indices* here (a client's pages on node 2 of nodes
(0, 2, 3) land in column 1).  An unmanaged client is modelled with the affinity it was
bound to, and counts on the node holding most of its bound CPUs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from homenode.linux.clients import Tracked
from homenode.model import Client, Snapshot, Topology


def client_model(c: Tracked, topo: Topology) -> Client:
    cpu_aff = mem_aff = None
    if not c.managed:
        if c.bound_cpus:
            cpu_aff = frozenset(i for i, cpus in enumerate(topo.cpus)
                                if c.bound_cpus & set(cpus))
        if c.bound_mems:
            mem_aff = frozenset(i for i, nid in enumerate(topo.node_ids)
                                if nid in c.bound_mems)
        if not cpu_aff and not mem_aff:
            cpu_aff = frozenset(range(topo.n))     # unmanaged, bound to nothing known
    return Client(c.id, c.name, vcpus=c.vcpus, mem_bytes=c.mem_bytes, shares=c.shares,
                  limit=c.limit, cpu_affinity=cpu_aff or None, mem_affinity=mem_aff or None)


def home_index(c: Tracked, topo: Topology, pages: np.ndarray) -> int:
    """The client's home as a node index (-1: not placed).  A managed client whose home
    node lost all its CPUs is unplaced, to be placed again."""
    if c.managed:
        if c.home is None:
            return -1
        if c.home in topo.node_ids and topo.cpus[topo.index(c.home)]:
            return topo.index(c.home)
        c.home = None
        return -1
    if c.bound_cpus:
        overlap = [len(c.bound_cpus & set(cpus)) for cpus in topo.cpus]
        if max(overlap) > 0:
            return int(np.argmax(overlap))
    if pages.sum() > 0:
        return int(np.argmax(pages))
    return -1


def build_snapshot(now: float, topo: Topology, tracked: list[Tracked],
                   models: tuple[Client, ...], free: np.ndarray) -> Snapshot:
    n, nn = len(tracked), topo.n
    index = {nid: i for i, nid in enumerate(topo.node_ids)}
    pages = np.zeros((n, nn), np.int64)
    for i, c in enumerate(tracked):
        for nid, p in c.pages.items():
            j = index.get(nid)
            if j is not None:
                pages[i, j] = p
    home = np.fromiter((home_index(c, topo, pages[i]) for i, c in enumerate(tracked)),
                       np.int64, n)
    return Snapshot(now, topo, models, home,
                    np.fromiter((c.home_since for c in tracked), float, n),
                    np.fromiter((c.demand for c in tracked), float, n),
                    np.fromiter((c.received for c in tracked), float, n), pages, free)


class Models:
    """The clients' models, rebuilt only when a client or the topology changed."""

    def __init__(self) -> None:
        self._key: tuple = ()
        self._models: tuple[Client, ...] = ()

    def snapshot(self, now: float, topo: Topology, tracked: list[Tracked],
                 free: np.ndarray, label: Callable[[Client, Tracked, Topology], Client]
                 ) -> Snapshot:
        key = (id(topo), *((c.id, c.version) for c in tracked))
        if key != self._key:
            self._key = key
            self._models = tuple(label(client_model(c, topo), c, topo) for c in tracked)
        return build_snapshot(now, topo, tracked, self._models, free)
