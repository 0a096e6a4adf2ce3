"""What a move does to a client's company: the share of its affinity group it would sit
with, and the SLIT distance to its vNUMA siblings.  Scores (rules.py) and the
cost-benefit test (payoff.py) both read these."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from homenode.policy.moves import Moves, View


def _group_gain(v: View, group: np.ndarray, i: np.ndarray, frm: np.ndarray, to: np.ndarray,
                counts: np.ndarray,
                per: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    g = group[i]
    ok = g >= 0
    if not ok.any():
        return np.zeros(i.size)
    rows = counts[np.maximum(g, 0)].astype(float)
    rows[np.arange(i.size), frm] -= 1          # the client itself
    return np.where(ok, per(rows, to) - per(rows, frm), 0.0)


def group_targets(v: View, idx: np.ndarray) -> np.ndarray:
    """For each of ``idx`` (members of affinity groups, placed): the node where most of
    the *rest* of its group sits, or its home where no node holds more of them.  Counting
    the client itself would send both halves of an evenly split group toward one node
    (the lower-numbered), so the other half could never try, whatever room it has."""
    rows = np.arange(idx.size)
    others = v.group_counts(v.aff)[v.aff[idx]]
    others[rows, v.home[idx]] -= 1
    target = np.argmax(others, axis=1)
    more = others[rows, target] > others[rows, v.home[idx]]
    return np.where(more, target, v.home[idx])


def affinity_gain(v: View, m: Moves) -> np.ndarray:
    """Share of the client's group that it would sit with, gained by the move."""
    if (v.aff < 0).all():
        return np.zeros(m.idx.size)
    counts = v.group_counts(v.aff)

    def share(rows: np.ndarray, node: np.ndarray) -> np.ndarray:
        return rows[np.arange(node.size), node] / np.maximum(rows.sum(axis=1), 1.0)

    g = _group_gain(v, v.aff, m.idx, m.src, m.dst, counts, share)
    if m.swaps:
        has = m.partner >= 0
        g = g + np.where(has, _group_gain(v, v.aff, np.maximum(m.partner, 0), m.dst, m.src,
                                          counts, share), 0.0)
    return g


def closeness_gain(v: View, m: Moves) -> np.ndarray:
    """SLIT distance to the client's vNUMA siblings saved by the move (mean)."""
    if (v.vm < 0).all():
        return np.zeros(m.idx.size)
    counts = v.group_counts(v.vm)

    def mean_dist(rows: np.ndarray, node: np.ndarray) -> np.ndarray:
        # counts x integer distances: exact in any order of summation
        return (rows * v.distance[node]).sum(axis=1) / np.maximum(rows.sum(axis=1), 1.0)

    return -_group_gain(v, v.vm, m.idx, m.src, m.dst, counts, mean_dist)
