"""Proportional-share CPU allocation: reservations first, then shares, capped by limits.

One function serves both the simulator (what each client *receives* on its node) and
the policy (what each client is *entitled to* host-wide), so the two can never disagree
on what "fair" means.
"""

from __future__ import annotations

import numpy as np

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
