"""Step 1 -- initial placement: a new client goes to the node with the most headroom.

Headroom is measured after the client is added: spare cores (after entitled load) as a
fraction of the node's cores, plus ``placement_mem_weight`` times spare memory as a
fraction of the node's memory.  Clients placed in the same tick count against their
node at once, so a burst of simultaneous starts spreads out instead of piling onto the
node that looked emptiest when the burst began (ESXi KB 430776, ``numad -w``).
"""

from __future__ import annotations

import numpy as np

from homenode.model import Considered, Decision, Reason, SetHome, Snapshot
from homenode.settings import Settings


def headroom(cores: np.ndarray, used_cores: np.ndarray, mem_pages: np.ndarray,
             free_pages: np.ndarray, cpu: float, mem: int, mem_weight: float) -> np.ndarray:
    """Score per node of placing a client needing ``cpu`` cores and ``mem`` pages there."""
    cpu_head = np.where(cores > 0, (cores - used_cores - cpu) / np.maximum(cores, 1e-9), -np.inf)
    mem_head = np.where(mem_pages > 0, (free_pages - mem) / np.maximum(mem_pages, 1), -1.0)
    return cpu_head + mem_weight * mem_head


def place_new(snap: Snapshot, s: Settings, home: np.ndarray, ent: np.ndarray,
              cap: np.ndarray, decision: Decision) -> None:
    """Give every unplaced managed client a home; updates ``home`` in place."""
    new = np.flatnonzero((home < 0) & snap.managed)
    if new.size == 0:
        return
    topo = snap.topology
    placed = home >= 0
    used = np.bincount(home[placed], ent[placed], topo.n)
    free = snap.free_pages.astype(float).copy()
    for i in new:
        c = snap.clients[i]
        # A client that has not run yet shows no demand: count all its vCPUs (the fix
        # KB 430776 promises), or its measured demand if the host already has one.
        cpu = float(ent[i]) if ent[i] > 0 else float(cap[i])
        need = max(c.mem_pages - int(snap.pages[i].sum()), 0)
        score = headroom(topo.cores, used, topo.mem_pages, free, cpu, need,
                         s.placement_mem_weight)
        dst = int(np.argmax(score))
        home[i] = dst
        used[dst] += cpu
        free[dst] -= need
        detail = f"headroom {score[dst]:.3f} (cpu {cpu:.2f} cores, mem {need} pages)"
        decision.actions.append(SetHome(c.id, -1, dst, Reason.INITIAL, float(score[dst]), detail))
        decision.considered.append(
            Considered(c.id, -1, dst, Reason.INITIAL, float(score[dst]), "taken"))
