"""Small builders for hand-made snapshots in rule tests."""

from __future__ import annotations

import numpy as np

from homenode.model import Client, Snapshot, Topology
from homenode.sim.traces import traces_dir
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


# the folders of ../shared/traces the built-in trace scenarios and the train spec read
TRACE_FOLDERS = {"bitbrains": "bitbrains-rnd-2013-7", "planetlab": "planetlab-20110303"}


def traces_missing(name: str | None = None) -> str:
    """Why a test of the real traces (of scenario ``name``, or any) cannot run here, or
    "" where they are in place."""
    folders = [TRACE_FOLDERS[name]] if name in TRACE_FOLDERS else (
        [] if name else list(TRACE_FOLDERS.values()))
    absent = [f for f in folders if not (traces_dir() / f).is_dir()]
    if not absent:
        return ""
    return f"traces not found under {traces_dir()}: {', '.join(absent)} (set HOMENODE_TRACES_DIR)"
