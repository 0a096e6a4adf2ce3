"""Step 3 -- paced memory migration after a home change.

Each call grants every client a page budget for the time since the last call:
``page_mig_rate_max`` pages/s, scaled down

* when little remote memory remains (below ``page_mig_remote_knee`` of its pages, the
  rate falls in proportion, to a floor of ``page_mig_rate_min_ratio``), and
* when the destination is short of free memory (below ``page_mig_free_low``), reaching
  zero at ``page_mig_free_reserve``,

and nothing at all until the client has stayed ``page_mig_delay`` on its new home, so
a brief move costs no copying -- unless ``page_mig_at_move`` (off by default): then pages
are granted from the decision that sets the new home.  The budget is spent on the largest
remote node first.
"""

from __future__ import annotations

import numpy as np

from homenode.model import Decision, MigratePages, Reason, Snapshot
from homenode.settings import Settings

MAX_GAP = 5.0   # s: a late call must not turn into a burst of copying


def rate(s: Settings, remote_frac: np.ndarray | float,
         dst_free_frac: np.ndarray | float) -> np.ndarray | float:
    """Paced pages/s per client (before the destination's free-page cap)."""
    remote = np.asarray(remote_frac, float)
    free = np.asarray(dst_free_frac, float)
    r = np.full(remote.shape, s.page_mig_rate_max)
    if s.page_mig_remote_knee > 0:
        r = r * np.clip(remote / s.page_mig_remote_knee, s.page_mig_rate_min_ratio, 1.0)
    span = s.page_mig_free_low - s.page_mig_free_reserve
    low = free < s.page_mig_free_low
    scale = np.clip((free - s.page_mig_free_reserve) / span, 0.0, 1.0) if span > 0 else 0.0
    r = np.where(low, r * scale, r)
    r = np.where(remote > 0, r, 0.0)
    return float(r) if r.ndim == 0 else r


def pace(snap: Snapshot, s: Settings, home: np.ndarray, dt: float | None,
         decision: Decision) -> None:
    """Append MigratePages actions for this call's budget (dt None: the first call)."""
    if not s.page_mig_enable or not snap.clients:
        return
    if dt is None:      # the first decision: nothing has elapsed; at_move paces ahead
        dt = s.rebalance_period if s.page_mig_at_move else 0.0
    if dt <= 0:
        return
    dt = min(dt, MAX_GAP)
    topo = snap.topology
    total = snap.pages.sum(axis=1)
    rows = np.arange(len(snap.clients))
    local = np.where(home >= 0, snap.pages[rows, np.maximum(home, 0)], 0)
    remote = total - local
    # A client given a new home in this very decision has not settled (home differs
    # from what the host reported); with page_mig_at_move it is granted pages at once.
    settled = (True if s.page_mig_at_move else
               (snap.time - snap.home_since >= s.page_mig_delay) & (home == snap.home))
    want = np.flatnonzero(snap.managed & (home >= 0) & (remote > 0) & settled
                          & (topo.mem_pages[np.maximum(home, 0)] > 0))
    if want.size == 0:
        return
    dst = home[want]
    cap = topo.mem_pages[dst].astype(float)
    r = rate(s, remote[want] / total[want], snap.free_pages[dst] / cap)
    budget = np.floor(r * dt)
    # Clients moving to the same node share its room above the reserve, in index order.
    room = np.maximum(snap.free_pages - s.page_mig_free_reserve * topo.mem_pages, 0.0)
    before = _cumsum_by_group(budget, dst) - budget
    budget = np.clip(room[dst] - before, 0.0, budget)
    # only clients granted pages this call need their remote nodes ordered
    granted = budget > 0
    if not granted.all():
        want, dst, r, budget = want[granted], dst[granted], r[granted], budget[granted]
        if want.size == 0:
            return
    # Spend each budget on the client's largest remote nodes first.
    src_rows = snap.pages[want].astype(float)
    src_rows[np.arange(want.size), dst] = 0.0
    order = np.argsort(-src_rows, axis=1, kind="stable")
    sorted_rows = np.take_along_axis(src_rows, order, axis=1)
    spent_before = np.cumsum(sorted_rows, axis=1) - sorted_rows
    take = np.clip(budget[:, None] - spent_before, 0.0, sorted_rows).astype(np.int64)
    ids = snap.clients
    # The score of a page grant is its paced rate (pages/s); no detail string, as a
    # host with thousands of migrating clients gets thousands of these per tick (their
    # fields come out of numpy as lists at once: a scalar read each costs more than the
    # grant itself).
    k, j = np.nonzero(take)
    mem = Reason.MEMORY
    decision.actions.extend(
        MigratePages(ids[c].id, a, b, p, mem, x) for c, a, b, p, x in zip(
            want[k].tolist(), order[k, j].tolist(), dst[k].tolist(), take[k, j].tolist(),
            r[k].tolist(), strict=True))


def _cumsum_by_group(x: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Running sum of x within each group, in index order."""
    order = np.argsort(group, kind="stable")
    xs = x[order]
    cs = np.cumsum(xs)
    g = group[order]
    starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    offset = np.repeat(cs[starts] - xs[starts], np.diff(np.r_[starts, g.size]))
    out = np.empty_like(cs)
    out[order] = cs - offset
    return out
