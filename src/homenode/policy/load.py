"""Node load in entitlement terms, shared by every policy.

A client's *entitlement* is the CPU it is owed: its demand, capped by its vCPUs and
limit, and -- when the host as a whole is contended -- cut back in proportion to its
shares above its reservation.  A node's load is the sum of its clients' entitlements
over its cores; imbalance is the spread between the most and least loaded node.
"""

from __future__ import annotations

import numpy as np

from homenode.cpu import pooled_share
from homenode.model import Snapshot

__all__ = ["client_vectors", "entitlements", "imbalance", "node_loads"]


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
