"""Long-term fairness: a client owed CPU for too long is moved, even at some cost to
locality (ESXi's ``longTermFairnessMig``).

A client is *owed* in a period when it receives less than ``1 - lterm_mig_imbal_threshold``
of its entitlement.  After ``lterm_fairness_interval`` owed periods in a row it may move to
a node where it would get its due, or swap with a client there that is not owed.  That
is what shares CPU fairly over time when clients are too coarse to balance: three
one-vCPU VMs on two one-core nodes take turns on the node of their own.
"""

from __future__ import annotations

import numpy as np

from homenode.model import Reason
from homenode.policy.moves import Moves, View, make_moves, movable
from homenode.policy.payoff import rotation_does_not_repay
from homenode.policy.rules import (
    COMMON,
    would_thrash,
)


def not_better_off(v: View, m: Moves) -> np.ndarray:
    """The owed client would be as crowded on the destination as it is now (the
    destination's load after the move is not below the source's load by at least
    ``lterm_mig_imbal_threshold``)."""
    return v.loads[m.src] - m.load_dst_after < v.s.lterm_mig_imbal_threshold


FAIRNESS_FILTERS = (*COMMON, not_better_off, would_thrash, rotation_does_not_repay)


def fairness_candidates(v: View) -> list[Moves]:
    if v.s.lterm_fairness_interval <= 0:
        return []
    ok = movable(v)
    owed = np.flatnonzero(ok & (v.owed >= v.s.lterm_fairness_interval))
    if owed.size == 0:
        return []
    live = np.flatnonzero(v.cores > 0)
    content = ok & (v.owed == 0)
    out: list[Moves] = []
    for src in np.unique(v.home[owed]):
        idx = owed[v.home[owed] == src]
        for dst in live[live != src]:
            out.append(make_moves(v, Reason.FAIRNESS, idx, int(src), int(dst)))
            others = np.flatnonzero(content & (v.home == dst))[: v.s.swap_candidates]
            if others.size:
                out.append(make_moves(v, Reason.FAIRNESS, np.repeat(idx, others.size),
                                      int(src), int(dst), np.tile(others, idx.size)))
    return out
