"""The rebalancer's rules: filters (each one names the rule that stops a move, and its
docstring is what ``homenode explain`` prints) and scores (what a move gains).

Every function takes the period's ``View`` and a batch of candidate ``Moves`` and returns
one value per candidate: a mask of rejected candidates, or a score.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from homenode.model import Reason
from homenode.policy.groupgain import affinity_gain, closeness_gain
from homenode.policy.moves import Moves, View, cell, with_partner
from homenode.policy.payoff import does_not_pay, fairness_would_undo, payoff

FAIRNESS_URGENCY = 10.0   # score per period a client has been owed CPU


# --- filters: each returns the mask of candidates it rejects --------------------------

def _both(v: View, m: Moves, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """fn's verdict on the client and on a swap partner.  fn judges every client once,
    read per candidate: a batch holds each client many times (once per destination)."""
    per_client = fn(slice(None))
    bad = per_client[m.idx]
    if m.swaps:
        bad = bad | ((m.partner >= 0) & per_client[np.maximum(m.partner, 0)])
    return bad


def too_soon(v: View, m: Moves) -> np.ndarray:
    """A client changed home less than ``min_residence`` ago."""
    return _both(v, m, lambda i: v.now - v.since[i] < v.s.min_residence)


def swapped_recently(v: View, m: Moves) -> np.ndarray:
    """A client took part in a swap less than ``swap_consider_period`` periods ago."""
    wait = v.s.swap_consider_period * v.s.rebalance_period
    return _both(v, m, lambda i: v.now - v.swapped[i] < wait - 1e-9)


def changed_too_often(v: View, m: Moves) -> np.ndarray:
    """A client already changed home ``home_change_limit`` times within the last
    ``home_change_window``."""
    if v.s.home_change_limit <= 0 or v.changes is None:
        return np.zeros(m.idx.size, bool)
    return _both(v, m, lambda i: v.now - v.changes[i] < v.s.home_change_window - 1e-9)


def outside_allowed_nodes(v: View, m: Moves) -> np.ndarray:
    """The destination is outside the client's allowed nodes (numa.nodeAffinity)."""
    bad = ~cell(v.allowed, m.idx, m.dst)
    if not m.swaps:
        return bad
    return bad | ((m.partner >= 0) & ~cell(v.allowed, np.maximum(m.partner, 0), m.src))


def breaks_reservation(v: View, m: Moves) -> np.ndarray:
    """A node could not honour the reservations homed on it after the move."""
    pr = with_partner(v.res, m)
    dst_bad = v.reserved[m.dst] + v.res[m.idx] - pr > v.cores[m.dst] + 1e-9
    if not m.swaps:
        return dst_bad
    src_bad = v.reserved[m.src] - v.res[m.idx] + pr > v.cores[m.src] + 1e-9
    return dst_bad | ((m.partner >= 0) & src_bad)


def would_thrash(v: View, m: Moves) -> np.ndarray:
    """The move overshoots: it leaves the destination busier than the source, and the
    imbalance after exceeds ``mig_thrash_threshold`` of the imbalance before.

    Thrashing is a client bounced back and forth, which needs the pair's order to flip.
    A move that leaves the source at least as loaded cannot be undone by the next
    period, so it need only pass ``mig_threshold`` -- read literally for every move, the
    rule would forbid the first of the several moves a large imbalance needs (one
    busy VM cannot halve a 125 % imbalance)."""
    flips = m.load_dst_after > m.load_src_after + 1e-12
    return flips & (m.imb_after > v.s.mig_thrash_threshold * m.imb_before + 1e-12)


def gain_below_mig_threshold(v: View, m: Moves) -> np.ndarray:
    """The move cuts the imbalance by less than ``mig_threshold``."""
    return m.gain < v.s.mig_threshold


def over_core_cap(v: View, m: Moves) -> np.ndarray:
    """The move adds load to a destination that would then exceed ``core_cap_ratio`` at
    its recent peak (a swap of equals adds none)."""
    adds = m.peak_dst_after > v.peak_loads[m.dst] + 1e-12
    return adds & (m.peak_dst_after > v.s.core_cap_ratio)


def creates_imbalance(v: View, m: Moves) -> np.ndarray:
    """The move would leave an imbalance the balancer would undo next period."""
    if not v.s.affinity_respects_balance and m.reason is Reason.AFFINITY:
        return np.zeros(m.idx.size, bool)
    limit = max(m.imb_before, v.s.mig_imbalance_threshold)
    return (m.imb_after >= limit) & (m.max_after >= v.s.balance_min_load)


def locality_gain_too_small(v: View, m: Moves) -> np.ndarray:
    """Fewer than ``locality_mig_min_gain`` points of memory would become local."""
    return locality_gain(v, m) < v.s.locality_mig_min_gain


def swap_gains_too_little(v: View, m: Moves) -> np.ndarray:
    """A swap of a balanced host brings fewer than ``locality_mig_min_gain`` points of
    memory home and no share of an affinity group together."""
    return (locality_gain(v, m) < v.s.locality_mig_min_gain) & (affinity_gain(v, m) <= 0)


def no_net_benefit(v: View, m: Moves) -> np.ndarray:
    """What the move gains (locality, affinity, closeness) does not outweigh what it
    loses: a locality move must not cost more affinity than it brings memory home."""
    bad = score(v, m) <= 0
    if m.reason is Reason.AFFINITY:
        bad |= affinity_gain(v, m) <= 0
    return bad


def peaks_unknown(v: View, m: Moves) -> np.ndarray:
    """Less than ``affinity_peak_window`` has been observed, so the destination's peak
    load -- which a move toward memory or a partner must fit -- is not known yet."""
    return np.full(m.idx.size, not v.peaks_known)


Filter = Callable[[View, Moves], np.ndarray]
COMMON: tuple[Filter, ...] = (too_soon, changed_too_often, outside_allowed_nodes,
                               breaks_reservation)
FILTERS: dict[Reason, tuple[Filter, ...]] = {
    Reason.BALANCE: (*COMMON, would_thrash, gain_below_mig_threshold, does_not_pay,
                     fairness_would_undo),
    Reason.LOCALITY: (*COMMON, locality_gain_too_small, no_net_benefit, peaks_unknown,
                      over_core_cap, creates_imbalance, does_not_pay),
    Reason.AFFINITY: (*COMMON, no_net_benefit, peaks_unknown, over_core_cap,
                      creates_imbalance, does_not_pay),
}


# --- scores ---------------------------------------------------------------------------

def balance_gain(v: View, m: Moves) -> np.ndarray:
    """Percentage points of imbalance removed."""
    return 100.0 * m.gain


def locality_gain(v: View, m: Moves) -> np.ndarray:
    """Points of memory that become local (both clients of a swap; negative: lost)."""
    g = cell(v.mem_frac, m.idx, m.dst) - cell(v.mem_frac, m.idx, m.src)
    if m.swaps:
        p = np.maximum(m.partner, 0)
        g = g + np.where(m.partner >= 0,
                         cell(v.mem_frac, p, m.src) - cell(v.mem_frac, p, m.dst), 0.0)
    else:
        g = g + 0.0     # the same arithmetic as with a partner's zero
    return 100.0 * g


def score(v: View, m: Moves) -> np.ndarray:
    s = v.s.locality_weight_mem * locality_gain(v, m)
    if m.reason in (Reason.BALANCE, Reason.SWAP):
        s = s + v.s.balance_weight * balance_gain(v, m)
    s = s + v.s.locality_weight_action_affinity * affinity_gain(v, m)
    s = s + v.s.wide_distance_weight * closeness_gain(v, m)
    if m.reason is Reason.FAIRNESS:
        # the longest-owed client goes first, so clients take turns
        s = s + FAIRNESS_URGENCY * v.owed[m.idx]
        if v.s.cost_benefit_enable:
            # the cheapest rotation first: core-seconds it costs
            p = payoff(v, m)
            s = s - (p.remote + p.copy_cpu)
    # Among equals, prefer the nearer destination (its remote pages cost less until moved).
    return s - 1e-3 * cell(v.distance, m.src, m.dst)
