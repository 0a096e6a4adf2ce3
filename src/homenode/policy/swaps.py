"""Swaps: exchange two clients between nodes when no single move helps.

Two kinds, as ESXi's ``loadSwap`` and ``localitySwap``:

* **load swaps** (``swap_load_enable``) when the nodes are imbalanced: a busier client
  of an above-average node for a quieter one of a below-average node, which shifts only
  the *difference* of their loads -- the fine adjustment no single move can make;
* **locality swaps** (``swap_locality_enable``) when balanced: two clients that each
  hold their memory on the other's home.

Only ``swap_candidates`` clients per node are paired (spread over the range of loads,
or the least local first), so the search stays small with thousands of clients.
"""

from __future__ import annotations

import numpy as np

from homenode.model import Reason
from homenode.policy.moves import Moves, View, make_moves, movable
from homenode.policy.payoff import does_not_pay
from homenode.policy.rules import (
    COMMON,
    creates_imbalance,
    gain_below_mig_threshold,
    locality_gain_too_small,
    no_net_benefit,
    over_core_cap,
    swapped_recently,
    would_thrash,
)

LOAD_SWAP_FILTERS = (*COMMON, swapped_recently, would_thrash, gain_below_mig_threshold,
                     does_not_pay)
LOCALITY_SWAP_FILTERS = (*COMMON, swapped_recently, locality_gain_too_small, no_net_benefit,
                         over_core_cap, creates_imbalance, does_not_pay)


def swap_filters(v: View, m: Moves) -> tuple:
    if v.imbalanced():
        return LOAD_SWAP_FILTERS
    return LOCALITY_SWAP_FILTERS


def _spread(idx: np.ndarray, key: np.ndarray, k: int) -> np.ndarray:
    """Up to k of idx, evenly spread over their order by key."""
    if idx.size <= k:
        return idx
    order = idx[np.argsort(key[idx], kind="stable")]
    return order[np.linspace(0, order.size - 1, k).round().astype(int)]


def _pairs(v: View, a: np.ndarray, b: np.ndarray, src: int, dst: int,
           keep: np.ndarray | None = None) -> Moves | None:
    ai, bi = np.repeat(a, b.size), np.tile(b, a.size)
    if keep is not None:
        mask = keep(ai, bi)
        ai, bi = ai[mask], bi[mask]
    if ai.size == 0:
        return None
    return make_moves(v, Reason.SWAP, ai, src, dst, bi)


def swap_candidates(v: View) -> list[Moves]:
    live = v.cores > 0
    ok = movable(v)
    k = v.s.swap_candidates
    out: list[Moves] = []
    if v.imbalanced():
        if not (v.s.swap_load_enable and v.needs_balance()):
            return out
        mean = v.loads[live].mean()
        for src in np.flatnonzero(live & (v.loads > mean)):
            a = _spread(np.flatnonzero(ok & (v.home == src)), v.ent, k)
            for dst in np.flatnonzero(live & (v.loads < mean)):
                b = _spread(np.flatnonzero(ok & (v.home == dst)), v.ent, k)
                m = _pairs(v, a, b, int(src), int(dst), lambda x, y: v.ent[x] > v.ent[y])
                if m is not None:
                    out.append(m)
        return out
    if not v.s.swap_locality_enable:
        return out
    nodes = np.flatnonzero(live)
    for src in nodes:
        for dst in nodes[nodes > src]:
            want_dst = ok & (v.home == src) & (v.mem_frac[:, dst] > v.mem_frac[:, src])
            want_src = ok & (v.home == dst) & (v.mem_frac[:, src] > v.mem_frac[:, dst])
            a = _least_local(v, np.flatnonzero(want_dst), k)
            b = _least_local(v, np.flatnonzero(want_src), k)
            if a.size and b.size:
                m = _pairs(v, a, b, int(src), int(dst))
                if m is not None:
                    out.append(m)
    return out


def _least_local(v: View, idx: np.ndarray, k: int) -> np.ndarray:
    local = v.mem_frac[idx, v.home[idx]]
    return idx[np.argsort(local, kind="stable")[:k]]
