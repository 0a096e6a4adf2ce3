"""Step 2 -- dynamic rebalancing, as a pipeline: candidates -> filters -> scores -> pick.

Every ``rebalance_period`` the rebalancer looks at node loads (entitled CPU / cores) and,
in this order, considers:

1. **long-term fairness moves** for clients owed CPU for too long (``fairness.py``);
2. **balance moves** -- when max - min load >= ``mig_imbalance_threshold`` and the busiest
   node is at least ``balance_min_load``: each client of an above-average node to each
   below-average node;
3. **locality and affinity moves** -- when balanced: a client back to the node holding
   most of its memory, or onto the node of the clients it communicates with;
4. **swaps** -- every ``swap_interval`` periods, when no single move passed: two clients
   exchanged between nodes, for load or for locality (``swaps.py``).

A candidate must pass every filter of its kind (each filter is named for the rule that
stops a move; ``homenode explain`` shows it) and is scored by the balance, locality,
affinity and closeness it gains; the best is taken, the view is updated, and up to
``max_moves_per_period`` moves are made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from homenode.model import Considered, Decision, Reason, SetHome
from homenode.settings import Settings

EXPLAIN_KEEP = 24   # alternatives kept per period for `explain`
FAIRNESS_URGENCY = 10.0   # score per period a client has been owed CPU
NONE = -1


@dataclass
class View:
    """What the rebalancer knows during one period; updated as moves are picked."""

    s: Settings
    now: float
    period: int             # how many rebalance periods have run before this one
    ids: list[str]
    home: np.ndarray        # node index per client (updated as moves are made)
    since: np.ndarray       # time of last home change
    ent: np.ndarray         # entitled cores per client
    ent_peak: np.ndarray    # entitlement at the client's recent peak demand
    loads: np.ndarray       # per node
    peak_loads: np.ndarray  # per node, from ent_peak
    cores: np.ndarray
    mem_frac: np.ndarray    # (C, N) fraction of each client's pages per node
    managed: np.ndarray
    allowed: np.ndarray     # (C, N) numa.nodeAffinity
    res: np.ndarray         # reservation per client, cores
    reserved: np.ndarray    # per node: sum of reservations homed there
    distance: np.ndarray
    vm: np.ndarray          # VM group of a vNUMA client, -1 = none
    aff: np.ndarray         # affinity group, -1 = none
    swapped: np.ndarray     # time of the client's last swap
    owed: np.ndarray        # consecutive periods the client was owed CPU
    peaks_known: bool = True   # a whole affinity_peak_window has been observed

    def imbalance(self) -> float:
        live = self.loads[self.cores > 0]
        return float(live.max() - live.min()) if live.size > 1 else 0.0

    def needs_balance(self) -> bool:
        """Imbalanced beyond the threshold, with the busiest node busy enough to matter."""
        live = self.loads[self.cores > 0]
        return (self.imbalance() >= self.s.mig_imbalance_threshold
                and live.size > 0 and float(live.max()) >= self.s.balance_min_load)

    def group_counts(self, group: np.ndarray) -> np.ndarray:
        """(G, N) number of each group's clients homed on each node."""
        n = self.cores.size
        ok = (group >= 0) & (self.home >= 0)
        g = int(group.max()) + 1 if group.size and group.max() >= 0 else 0
        return np.bincount(group[ok] * n + self.home[ok], minlength=g * n).reshape(g, n)


@dataclass
class Moves:
    """Candidates: client ``idx[k]`` from ``src`` to ``dst`` (and, for a swap,
    ``partner[k]`` from ``dst`` to ``src``)."""

    reason: Reason
    idx: np.ndarray
    src: int
    dst: int
    partner: np.ndarray
    imb_before: float
    imb_after: np.ndarray
    load_src_after: np.ndarray
    load_dst_after: np.ndarray
    peak_dst_after: np.ndarray
    max_after: np.ndarray

    @property
    def gain(self) -> np.ndarray:
        return self.imb_before - self.imb_after

    @property
    def swaps(self) -> bool:
        return bool((self.partner >= 0).any())


def make_moves(v: View, reason: Reason, idx: np.ndarray, src: int, dst: int,
               partner: np.ndarray | None = None) -> Moves:
    """Loads and imbalance if each candidate alone were carried out."""
    partner = np.full(idx.size, NONE) if partner is None else partner
    has = partner >= 0
    de = v.ent[idx] - np.where(has, v.ent[np.maximum(partner, 0)], 0.0)
    dp = v.ent_peak[idx] - np.where(has, v.ent_peak[np.maximum(partner, 0)], 0.0)
    live = v.cores > 0
    others = live.copy()
    others[[src, dst]] = False
    hi = v.loads[others].max() if others.any() else -np.inf
    lo = v.loads[others].min() if others.any() else np.inf
    new_src = v.loads[src] - de / v.cores[src] if live[src] else np.zeros(idx.size)
    new_dst = v.loads[dst] + de / v.cores[dst]
    pts = [new_dst] + ([new_src] if live[src] else [])
    top = np.maximum.reduce([np.full(idx.size, hi), *pts])
    imb_after = top - np.minimum.reduce([np.full(idx.size, lo), *pts])
    peak_dst = v.peak_loads[dst] + dp / v.cores[dst]
    return Moves(reason, idx, src, dst, partner, v.imbalance(), imb_after, new_src, new_dst,
                 peak_dst, top)


# --- filters: each returns the mask of candidates it rejects --------------------------

def _both(v: View, m: Moves, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    bad = fn(m.idx)
    has = m.partner >= 0
    if has.any():
        bad = bad | (has & fn(np.maximum(m.partner, 0)))
    return bad


def too_soon(v: View, m: Moves) -> np.ndarray:
    """A client changed home less than ``min_residence`` ago."""
    return _both(v, m, lambda i: v.now - v.since[i] < v.s.min_residence)


def swapped_recently(v: View, m: Moves) -> np.ndarray:
    """A client took part in a swap less than ``swap_consider_period`` periods ago."""
    wait = v.s.swap_consider_period * v.s.rebalance_period
    return _both(v, m, lambda i: v.now - v.swapped[i] < wait - 1e-9)


def outside_allowed_nodes(v: View, m: Moves) -> np.ndarray:
    """The destination is outside the client's allowed nodes (numa.nodeAffinity)."""
    bad = ~v.allowed[m.idx, m.dst]
    has = m.partner >= 0
    return bad | (has & ~v.allowed[np.maximum(m.partner, 0), m.src])


def breaks_reservation(v: View, m: Moves) -> np.ndarray:
    """A node could not honour the reservations homed on it after the move."""
    has = m.partner >= 0
    pr = np.where(has, v.res[np.maximum(m.partner, 0)], 0.0)
    dst_bad = v.reserved[m.dst] + v.res[m.idx] - pr > v.cores[m.dst] + 1e-9
    src_bad = v.reserved[m.src] - v.res[m.idx] + pr > v.cores[m.src] + 1e-9
    return dst_bad | (has & src_bad)


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
COMMON: tuple[Filter, ...] = (too_soon, outside_allowed_nodes, breaks_reservation)
FILTERS: dict[Reason, tuple[Filter, ...]] = {
    Reason.BALANCE: (*COMMON, would_thrash, gain_below_mig_threshold),
    Reason.LOCALITY: (*COMMON, locality_gain_too_small, no_net_benefit, peaks_unknown,
                      over_core_cap, creates_imbalance),
    Reason.AFFINITY: (*COMMON, no_net_benefit, peaks_unknown, over_core_cap,
                      creates_imbalance),
}


# --- scores ---------------------------------------------------------------------------

def balance_gain(v: View, m: Moves) -> np.ndarray:
    """Percentage points of imbalance removed."""
    return 100.0 * m.gain


def locality_gain(v: View, m: Moves) -> np.ndarray:
    """Points of memory that become local (both clients of a swap; negative: lost)."""
    g = v.mem_frac[m.idx, m.dst] - v.mem_frac[m.idx, m.src]
    has = m.partner >= 0
    p = np.maximum(m.partner, 0)
    g = g + np.where(has, v.mem_frac[p, m.src] - v.mem_frac[p, m.dst], 0.0)
    return 100.0 * g


def _group_gain(v: View, group: np.ndarray, i: np.ndarray, frm: int, to: int,
                counts: np.ndarray, per: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
    g = group[i]
    ok = g >= 0
    if not ok.any():
        return np.zeros(i.size)
    rows = counts[np.maximum(g, 0)].astype(float)
    rows[np.arange(i.size), frm] -= 1          # the client itself
    return np.where(ok, per(rows, to) - per(rows, frm), 0.0)


def affinity_gain(v: View, m: Moves) -> np.ndarray:
    """Share of the client's group that it would sit with, gained by the move."""
    if (v.aff < 0).all():
        return np.zeros(m.idx.size)
    counts = v.group_counts(v.aff)

    def share(rows: np.ndarray, node: int) -> np.ndarray:
        return rows[:, node] / np.maximum(rows.sum(axis=1), 1.0)

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

    def mean_dist(rows: np.ndarray, node: int) -> np.ndarray:
        return rows @ v.distance[node] / np.maximum(rows.sum(axis=1), 1.0)

    return -_group_gain(v, v.vm, m.idx, m.src, m.dst, counts, mean_dist)


def score(v: View, m: Moves) -> np.ndarray:
    s = v.s.locality_weight_mem * locality_gain(v, m)
    if m.reason in (Reason.BALANCE, Reason.SWAP):
        s = s + v.s.balance_weight * balance_gain(v, m)
    s = s + v.s.locality_weight_action_affinity * affinity_gain(v, m)
    s = s + v.s.wide_distance_weight * closeness_gain(v, m)
    if m.reason is Reason.FAIRNESS:
        # the longest-owed client goes first, so clients take turns
        s = s + FAIRNESS_URGENCY * v.owed[m.idx]
    # Among equals, prefer the nearer destination (its remote pages cost less until moved).
    return s - 1e-3 * v.distance[m.src, m.dst]


# --- candidates -----------------------------------------------------------------------

def movable(v: View) -> np.ndarray:
    return v.managed & (v.home >= 0)


def balance_candidates(v: View) -> list[Moves]:
    """Clients of above-average nodes to each below-average node."""
    live = v.cores > 0
    mean = v.loads[live].mean()
    ok = movable(v) & (v.ent > 0)
    out = []
    for src in np.flatnonzero(live & (v.loads > mean)):
        idx = np.flatnonzero(ok & (v.home == src))
        if idx.size:
            out += [make_moves(v, Reason.BALANCE, idx, int(src), int(dst))
                    for dst in np.flatnonzero(live & (v.loads < mean))]
    return out


def _toward(v: View, reason: Reason, idx: np.ndarray, target: np.ndarray) -> list[Moves]:
    away = target != v.home[idx]
    out = []
    for src, dst in sorted({(int(a), int(b)) for a, b in
                            zip(v.home[idx][away], target[away], strict=True)}):
        if v.cores[dst] > 0:
            pick = idx[away & (v.home[idx] == src) & (target == dst)]
            out.append(make_moves(v, reason, pick, src, dst))
    return out


def locality_candidates(v: View) -> list[Moves]:
    """Clients whose memory mostly sits on a node other than their home, to that node."""
    idx = np.flatnonzero(movable(v))
    if idx.size == 0:
        return []
    return _toward(v, Reason.LOCALITY, idx, np.argmax(v.mem_frac[idx], axis=1))


def affinity_candidates(v: View) -> list[Moves]:
    """Clients of an affinity group, toward the node where most of their group sits."""
    idx = np.flatnonzero(movable(v) & (v.aff >= 0))
    if idx.size == 0:
        return []
    counts = v.group_counts(v.aff)
    return _toward(v, Reason.AFFINITY, idx, np.argmax(counts[v.aff[idx]], axis=1))


# --- pick -----------------------------------------------------------------------------

Picked = tuple[Moves, int, float]


def evaluate(v: View, batches: list[Moves], notes: list[tuple[float, Considered]],
             filters: dict[Reason, tuple[Filter, ...]] = FILTERS) -> Picked | None:
    """Best surviving candidate over all batches; notes keep the alternatives."""
    best: Picked | None = None
    for m in batches:
        sc = score(v, m)
        verdict = np.full(m.idx.size, "", dtype=object)
        if m.reason is Reason.SWAP:
            from homenode.policy.swaps import swap_filters
            chain = swap_filters(v, m)
        else:
            chain = filters[m.reason]
        for f in chain:
            hit = f(v, m) & (verdict == "")
            verdict[hit] = f.__name__
        ok = verdict == ""
        for k in np.argsort(-sc, kind="stable")[:3]:
            notes.append((float(sc[k]), Considered(v.ids[m.idx[k]], m.src, m.dst, m.reason,
                                                   float(sc[k]), verdict[k] or "ok")))
        if ok.any():
            k = int(np.flatnonzero(ok)[np.argmax(sc[ok])])
            if best is None or sc[k] > best[2]:
                best = (m, k, float(sc[k]))
    return best


def apply_move(v: View, m: Moves, k: int) -> list[tuple[int, int, int]]:
    """Update the view; returns (client, from, to) for each client that moved."""
    moved = [(int(m.idx[k]), m.src, m.dst)]
    if m.partner[k] >= 0:
        moved.append((int(m.partner[k]), m.dst, m.src))
    for i, a, b in moved:
        if v.cores[a] > 0:
            v.loads[a] -= v.ent[i] / v.cores[a]
            v.peak_loads[a] -= v.ent_peak[i] / v.cores[a]
        v.loads[b] += v.ent[i] / v.cores[b]
        v.peak_loads[b] += v.ent_peak[i] / v.cores[b]
        v.reserved[a] -= v.res[i]
        v.reserved[b] += v.res[i]
        v.home[i] = b
        v.since[i] = v.now
        if m.reason is Reason.SWAP:
            v.swapped[i] = v.now
        if m.reason is Reason.FAIRNESS:
            v.owed[i] = 0
    return moved


def rebalance(v: View, decision: Decision) -> None:
    """Up to ``max_moves_per_period`` moves, in the order of the module docstring."""
    from homenode.policy.fairness import fairness_candidates
    from homenode.policy.swaps import swap_candidates

    notes: list[tuple[float, Considered]] = []
    swap_turn = v.period % v.s.swap_interval == 0
    for _ in range(v.s.max_moves_per_period):
        before = v.imbalance()
        picked = evaluate(v, fairness_candidates(v), notes)
        if picked is None and v.needs_balance():
            picked = evaluate(v, balance_candidates(v), notes)
        if picked is None and not v.needs_balance():
            picked = evaluate(v, locality_candidates(v) + affinity_candidates(v), notes)
        if picked is None and swap_turn:
            picked = evaluate(v, swap_candidates(v), notes)
        if picked is None:
            break
        m, k, sc = picked
        detail = (f"imbalance {before:.3f} -> {m.imb_after[k]:.3f}, locality "
                  f"{locality_gain(v, m)[k]:+.1f} pts")
        for i, a, b in apply_move(v, m, k):
            decision.actions.append(SetHome(v.ids[i], a, b, m.reason, sc, detail))
            notes.append((np.inf, Considered(v.ids[i], a, b, m.reason, sc, "taken")))
    notes.sort(key=lambda t: -t[0])
    seen = set()
    for _, c in notes:
        key = (c.client, c.dst, c.reason)
        if key not in seen and len(seen) < EXPLAIN_KEEP:
            seen.add(key)
            decision.considered.append(c)
