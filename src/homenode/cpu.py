"""Proportional-share CPU allocation: reservations first, then shares, capped by limits.

``share_cpu`` shares one level; ``pooled_share`` applies it down a tree of resource
pools.  One function serves both the simulator (what each client *receives* on its node) and
the policy (what each client is *entitled to* host-wide), so the two can never disagree
on what "fair" means.
"""

from __future__ import annotations

import numpy as np

from homenode.model import Pool

_EPS = 1e-9
_MAX_ROUNDS = 64


def share_cpu(capacity: np.ndarray, group: np.ndarray, want: np.ndarray,
              shares: np.ndarray, reservation: np.ndarray) -> np.ndarray:
    """CPU given to each client when clients of one group compete for its capacity.

    ``group[i]`` is the index into ``capacity`` that client i draws from (-1: none).
    ``want`` is already capped by the client's vCPUs and limit.  Reservations are
    served first (scaled down if a group is over-reserved), the rest is divided in
    proportion to shares, water-filling: a client that wants less than its share
    leaves the remainder to the others.  Never gives more than ``want`` and never more
    than a group's capacity in total.
    """
    n_groups = capacity.shape[0]
    out = np.zeros(want.shape[0])
    ok = group >= 0
    if not ok.any():
        return out
    # Fast path: no group is contended, everyone gets what it wants.
    if (np.bincount(group[ok], want[ok], n_groups) <= capacity + _EPS).all():
        out[ok] = np.maximum(want[ok], 0.0)
        return out
    g = group[ok]
    w = np.maximum(want[ok], 0.0)
    sh = np.maximum(shares[ok].astype(float), _EPS)
    res = np.minimum(np.maximum(reservation[ok], 0.0), w)

    cap = np.maximum(capacity, 0.0)
    reserved = np.bincount(g, res, n_groups)
    scale = np.where(reserved > cap, cap / np.maximum(reserved, _EPS), 1.0)
    got = res * scale[g]
    remaining = cap - np.bincount(g, got, n_groups)
    need = w - got
    active = need > _EPS
    for _ in range(_MAX_ROUNDS):
        if not active.any():
            break
        total_shares = np.bincount(g[active], sh[active], n_groups)
        rate = np.where(total_shares > 0, np.maximum(remaining, 0.0) /
                        np.maximum(total_shares, _EPS), 0.0)
        offer = sh * rate[g]
        capped = active & (offer >= need - _EPS)
        if not capped.any():
            got = np.where(active, got + offer, got)
            break
        got = np.where(capped, w, got)
        remaining -= np.bincount(g[capped], need[capped], n_groups)
        need = np.where(capped, 0.0, need)
        active &= ~capped
    out[ok] = np.minimum(got, w)
    return out


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
