"""Step 3 -- paced memory migration after a home change.

Each call grants every client a page budget for the time since the last call:
``page_mig_rate_max`` pages/s, scaled down

* when little remote memory remains (below ``page_mig_remote_knee`` of its pages, the
  rate falls in proportion, to a floor of ``page_mig_rate_min_ratio``), and
* when the destination is short of free memory (below ``page_mig_free_low``), reaching
  zero at ``page_mig_free_reserve``,

and nothing at all until the client has stayed ``page_mig_delay`` on its new home, so
a brief move costs no copying.  The budget is spent on the largest remote node first.
"""

from __future__ import annotations

import numpy as np

from homenode.model import Decision, MigratePages, Reason, Snapshot
from homenode.settings import Settings

MAX_GAP = 5.0   # s: a late call must not turn into a burst of copying


def rate(s: Settings, remote_frac: float, dst_free_frac: float) -> float:
    """Paced pages/s for one client (before the destination's free-page cap)."""
    if remote_frac <= 0:
        return 0.0
    r = s.page_mig_rate_max
    if s.page_mig_remote_knee > 0:
        r *= min(1.0, max(remote_frac / s.page_mig_remote_knee, s.page_mig_rate_min_ratio))
    span = s.page_mig_free_low - s.page_mig_free_reserve
    if dst_free_frac < s.page_mig_free_low:
        r *= max(0.0, (dst_free_frac - s.page_mig_free_reserve) / span) if span > 0 else 0.0
    return r


def pace(snap: Snapshot, s: Settings, home: np.ndarray, dt: float,
         decision: Decision) -> None:
    """Append MigratePages actions for this call's budget."""
    if not s.page_mig_enable or dt <= 0:
        return
    dt = min(dt, MAX_GAP)
    topo = snap.topology
    total = snap.pages.sum(axis=1)
    rows = np.arange(len(snap.clients))
    local = np.where(home >= 0, snap.pages[rows, np.maximum(home, 0)], 0)
    remote = total - local
    settled = snap.time - snap.home_since >= s.page_mig_delay
    want = np.flatnonzero(snap.managed & (home >= 0) & (remote > 0) & settled
                          & (home == _home_at_snapshot(snap)))
    free = snap.free_pages.astype(float).copy()
    reserve = s.page_mig_free_reserve * topo.mem_pages
    for i in want:
        dst = int(home[i])
        if topo.mem_pages[dst] <= 0:
            continue
        r = rate(s, remote[i] / total[i], free[dst] / topo.mem_pages[dst])
        budget = int(min(r * dt, max(free[dst] - reserve[dst], 0.0)))
        if budget <= 0:
            continue
        row = snap.pages[i].copy()
        row[dst] = 0
        for src in np.argsort(-row, kind="stable"):
            if budget <= 0 or row[src] <= 0:
                break
            n = int(min(budget, row[src]))
            budget -= n
            free[dst] -= n
            decision.actions.append(MigratePages(
                snap.clients[i].id, int(src), dst, n, Reason.MEMORY, r,
                f"{remote[i]} remote pages, rate {r:.0f} pages/s"))


def _home_at_snapshot(snap: Snapshot) -> np.ndarray:
    # A client given a new home in this very decision has not settled: compare with the
    # home the host reported.
    return snap.home
