"""Swaps: exchange two clients between nodes when no single move helps.

Two kinds, as ESXi's ``loadSwap`` and ``localitySwap``:

* **load swaps** (``swap_load_enable``) when the nodes are imbalanced: a busier client
  of an above-average node for a quieter one of a below-average node, which shifts only
  the *difference* of their loads -- the fine adjustment no single move can make;
* **locality swaps** (``swap_locality_enable``) when balanced: two clients that each
  hold their memory on the other's home;
* **affinity swaps** (also ``swap_locality_enable``), when balanced: a member of an
  affinity group onto the node where the rest of its group sits, for a client of that
  node outside its group -- where the member alone would not fit (``over_core_cap``),
  the exchange does.  A single affinity move is tried first, in the same period.

Only ``swap_candidates`` clients per node are paired (spread over the range of loads,
or the least local first), so the search stays small with thousands of clients.
"""

from __future__ import annotations

import numpy as np

from homenode.model import Reason
from homenode.policy.groupgain import group_targets
from homenode.policy.moves import Moves, View, make_moves, movable
from homenode.policy.payoff import does_not_pay, fairness_would_undo
from homenode.policy.rules import (
    COMMON,
    creates_imbalance,
    gain_below_mig_threshold,
    no_net_benefit,
    over_core_cap,
    swap_gains_too_little,
    swapped_recently,
    would_thrash,
)

LOAD_SWAP_FILTERS = (*COMMON, swapped_recently, would_thrash, gain_below_mig_threshold,
                     does_not_pay, fairness_would_undo)
LOCALITY_SWAP_FILTERS = (*COMMON, swapped_recently, swap_gains_too_little, no_net_benefit,
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


def _pairs(a: np.ndarray, b: np.ndarray, src: int, dst: int,
           out: list[list[np.ndarray]]) -> None:
    """Every client of a with every client of b, appended to out's columns."""
    out[0].append(np.repeat(a, b.size))
    out[1].append(np.tile(b, a.size))
    out[2].append(np.full(a.size * b.size, src))
    out[3].append(np.full(a.size * b.size, dst))


def _batch(v: View, cols: list[list[np.ndarray]],
           keep: np.ndarray | None = None) -> list[Moves]:
    if not cols[0]:
        return []
    ai, bi, src, dst = (np.concatenate(c) for c in cols)
    if keep is not None:
        mask = keep(ai, bi)
        ai, bi, src, dst = ai[mask], bi[mask], src[mask], dst[mask]
    if ai.size == 0:
        return []
    return [make_moves(v, Reason.SWAP, ai, src, dst, bi, group=src * v.cores.size + dst)]


def swap_candidates(v: View) -> list[Moves]:
    """One batch of swaps over every (source, destination) pair."""
    live = v.cores > 0
    ok = movable(v)
    k = v.s.swap_candidates
    cols: list[list[np.ndarray]] = [[], [], [], []]
    if v.imbalanced():
        if not (v.s.swap_load_enable and v.needs_balance()):
            return []
        mean = v.loads[live].mean()
        dsts = np.flatnonzero(live & (v.loads < mean))
        bs = {int(d): _spread(np.flatnonzero(ok & (v.home == d)), v.ent, k) for d in dsts}
        for src in np.flatnonzero(live & (v.loads > mean)):
            a = _spread(np.flatnonzero(ok & (v.home == src)), v.ent, k)
            for dst in dsts:
                _pairs(a, bs[int(dst)], int(src), int(dst), cols)
        return _batch(v, cols, lambda x, y: v.ent[x] > v.ent[y])
    if not v.s.swap_locality_enable:
        return []
    nodes = np.flatnonzero(live)
    # per node: its clients, least local first, and which nodes each would rather be on
    least, wants = {}, {}
    for node in nodes:
        mine = np.flatnonzero(ok & (v.home == node))
        mine = mine[np.argsort(v.mem_frac[mine, node], kind="stable")]
        least[int(node)] = mine
        wants[int(node)] = v.mem_frac[mine] > v.mem_frac[mine, node][:, None]
    for src in nodes:
        for dst in nodes[nodes > src]:
            a = least[int(src)][wants[int(src)][:, dst]][:k]
            b = least[int(dst)][wants[int(dst)][:, src]][:k]
            if a.size and b.size:
                _pairs(a, b, int(src), int(dst), cols)
    return _batch(v, cols) + _affinity_swaps(v, ok, nodes, k)


def _affinity_swaps(v: View, ok: np.ndarray, nodes: np.ndarray, k: int) -> list[Moves]:
    """Each group member drawn to another node, with up to k clients there (spread over
    their loads) that are not of its group."""
    members = np.flatnonzero(ok & (v.aff >= 0))
    if members.size == 0:
        return []
    target = group_targets(v, members)
    away = target != v.home[members]
    members, target = members[away], target[away]
    cols: list[list[np.ndarray]] = [[], [], [], []]
    for dst in np.unique(target):
        there = _spread(np.flatnonzero(ok & (v.home == dst)), v.ent, k)
        drawn = members[target == dst]
        for src in np.unique(v.home[drawn]):
            if there.size:
                _pairs(drawn[v.home[drawn] == src][:k], there, int(src), int(dst), cols)
    return _batch(v, cols, lambda x, y: v.aff[y] != v.aff[x])
