"""Small builders for hand-made snapshots in rule tests."""

from __future__ import annotations

import numpy as np

from homenode.model import Client, Snapshot, Topology
from homenode.units import GIB, PAGE_SIZE


def topo(nodes: int = 2, cores: float = 10.0, mem_gib: int = 64) -> Topology:
    return Topology.uniform(nodes, cores, mem_gib * GIB)


def snap(t: Topology, rows: list[dict], time: float = 100.0) -> Snapshot:
    """rows: dicts with id, home, demand, pages (list per node) and Client fields."""
    clients, home, since, demand, pages = [], [], [], [], []
    for r in rows:
        fields = {k: v for k, v in r.items() if k in Client.__dataclass_fields__}
        fields.setdefault("vcpus", 8)
        pg = r.get("pages", [0] * t.n)
        fields.setdefault("mem_bytes", int(sum(pg)) * PAGE_SIZE)
        clients.append(Client(**fields))
        home.append(r.get("home", -1))
        since.append(r.get("since", 0.0))
        demand.append(r.get("demand", 1.0))
        pages.append(pg)
    pages_a = np.array(pages, np.int64).reshape(len(rows), t.n)
    return Snapshot(time, t, tuple(clients), np.array(home, np.int64), np.array(since, float),
                    np.array(demand, float), np.array(demand, float), pages_a,
                    t.mem_pages - pages_a.sum(axis=0))
