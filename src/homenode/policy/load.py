"""Node load in entitlement terms, shared by every policy.

A client's *entitlement* is the CPU it is owed: its demand, capped by its vCPUs and
limit, and -- when the host as a whole is contended -- cut back in proportion to its
shares above its reservation.  A node's load is the sum of its clients' entitlements
over its cores; imbalance is the spread between the most and least loaded node.
"""

from __future__ import annotations

import numpy as np

from homenode.cpu import share_cpu
from homenode.model import Pool, Snapshot


def client_vectors(snap: Snapshot) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cpu cap, shares, reservation) per client, in cores."""
    v = snap.vectors()
    return v.cpu_cap, v.shares, v.reservation


def entitlements(snap: Snapshot, cap: np.ndarray, shares: np.ndarray,
                 res: np.ndarray, demand: np.ndarray | None = None) -> np.ndarray:
    """CPU each client is owed if the whole host were one pool of cores."""
    d = snap.demand if demand is None else demand
    want = np.minimum(np.maximum(d, 0.0), cap)
    pools = [c.pool for c in snap.clients] if snap.pools else None
    return pooled_share(float(snap.topology.cores.sum()), want, shares, res, pools, snap.pools)


def pooled_share(capacity: float, want: np.ndarray, shares: np.ndarray, res: np.ndarray,
                 client_pools: list[str] | None, pools: tuple[Pool, ...]) -> np.ndarray:
    """Hierarchical proportional share: the host's capacity is divided among top-level
    pools and clients by shares (after reservations), each pool's part among its
    children, and so on; a pool never gets more than its limit or its children want.

    ``capacity = inf`` gives what limits alone allow (used by the simulator to enforce
    pool limits host-wide while CPU is shared per node)."""
    if not pools or client_pools is None:
        if np.isinf(capacity):
            return np.maximum(want, 0.0)
        return share_cpu(np.array([capacity]), np.zeros(len(want), np.int64), want, shares, res)
    by_name = {p.name: p for p in pools}
    kids: dict[str, list[str]] = {p.name: [] for p in pools}
    kids[""] = []
    for p in pools:
        kids[p.parent if p.parent in by_name else ""].append(p.name)
    members: dict[str, list[int]] = {name: [] for name in kids}
    for i, name in enumerate(client_pools):
        members[name if name in by_name else ""].append(i)
    pool_want: dict[str, float] = {}

    def total_want(name: str) -> float:
        w = sum(total_want(k) for k in kids[name]) + float(want[members[name]].sum())
        if name:
            w = min(w, by_name[name].limit)
        pool_want[name] = w
        return w

    total_want("")
    out = np.zeros(len(want))

    def divide(name: str, amount: float) -> None:
        sub = kids[name]
        idx = members[name]
        w = np.array([pool_want[k] for k in sub] + [float(want[i]) for i in idx])
        sh = np.array([by_name[k].shares for k in sub] + [float(shares[i]) for i in idx])
        rs = np.array([by_name[k].reservation for k in sub] + [float(res[i]) for i in idx])
        if w.size == 0:
            return
        if np.isinf(amount):
            got = w
        else:
            got = share_cpu(np.array([amount]), np.zeros(w.size, np.int64), w, sh, rs)
        for k, g in zip(sub, got[:len(sub)], strict=True):
            divide(k, float(g))
        out[idx] = got[len(sub):]

    divide("", capacity)
    return out


def node_loads(snap: Snapshot, home: np.ndarray, ent: np.ndarray) -> np.ndarray:
    """Entitled CPU per node over the node's cores (CPU-less nodes read as 0)."""
    n = snap.topology.n
    placed = home >= 0
    used = np.bincount(home[placed], ent[placed], n)
    cores = snap.topology.cores
    return np.where(cores > 0, used / np.maximum(cores, 1e-9), 0.0)


def imbalance(loads: np.ndarray, cores: np.ndarray) -> float:
    """max - min load over the nodes that have CPUs."""
    live = loads[cores > 0]
    return float(live.max() - live.min()) if live.size > 1 else 0.0
