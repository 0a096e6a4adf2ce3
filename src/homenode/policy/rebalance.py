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

from dataclasses import dataclass

import numpy as np

from homenode.model import Considered, Decision, Reason, SetHome
from homenode.policy.fairness import FAIRNESS_FILTERS, fairness_candidates
from homenode.policy.groupgain import group_targets
from homenode.policy.moves import NONE, Moves, View, concat, make_moves, movable
from homenode.policy.payoff import (
    arithmetic,
    does_not_pay,
    fairness_would_undo,
    rotation_does_not_repay,
)
from homenode.policy.rules import FILTERS, Filter, locality_gain, score
from homenode.policy.swaps import swap_candidates, swap_filters

EXPLAIN_KEEP = 24   # alternatives kept per period for `explain`
COSTLY = (does_not_pay, rotation_does_not_repay, fairness_would_undo)   # on survivors only

__all__ = ["FILTERS", "NONE", "Moves", "View", "make_moves", "movable", "rebalance"]


# --- candidates -----------------------------------------------------------------------

def balance_candidates(v: View) -> list[Moves]:
    """Clients of above-average nodes to each below-average node (one batch, by source,
    then destination, then client)."""
    live = v.cores > 0
    mean = v.loads[live].mean()
    dsts = np.flatnonzero(live & (v.loads < mean))
    above = live & (v.loads > mean)
    mine = np.flatnonzero(movable(v) & (v.ent > 0) & above[np.maximum(v.home, 0)])
    if mine.size == 0 or dsts.size == 0:
        return []
    mine = mine[np.argsort(v.home[mine], kind="stable")]
    srcs, first, count = np.unique(v.home[mine], return_index=True, return_counts=True)
    nd = dsts.size
    idx = np.concatenate([np.broadcast_to(mine[f:f + c], (nd, c)).reshape(-1)
                          for f, c in zip(first.tolist(), count.tolist(), strict=True)])
    src = np.repeat(srcs, count * nd)
    dst = np.concatenate([np.repeat(dsts, c) for c in count.tolist()])
    return [make_moves(v, Reason.BALANCE, idx, src, dst, group=src * v.cores.size + dst)]


def _toward(v: View, reason: Reason, idx: np.ndarray, target: np.ndarray) -> list[Moves]:
    """idx to their target nodes, one batch, in order of (source, destination)."""
    away = (target != v.home[idx]) & (v.cores[target] > 0)
    if not away.any():
        return []
    i, src, dst = idx[away], v.home[idx][away], target[away]
    pair = src * v.cores.size + dst
    order = np.argsort(pair, kind="stable")
    return [make_moves(v, reason, i[order], src[order], dst[order], group=pair[order])]


def locality_candidates(v: View) -> list[Moves]:
    """Clients whose memory mostly sits on a node other than their home, to that node."""
    idx = np.flatnonzero(movable(v))
    if idx.size == 0:
        return []
    return _toward(v, Reason.LOCALITY, idx, np.argmax(v.mem_frac[idx], axis=1))


def affinity_candidates(v: View) -> list[Moves]:
    """Clients of an affinity group, toward the node where most of the rest of their
    group sits (``group_targets``)."""
    idx = np.flatnonzero(movable(v) & (v.aff >= 0))
    if idx.size == 0:
        return []
    return _toward(v, Reason.AFFINITY, idx, group_targets(v, idx))


# --- pick -----------------------------------------------------------------------------

Picked = tuple[Moves, int, float]


@dataclass(frozen=True)
class Note:
    """An alternative for ``explain``, worked into a ``Considered`` only if it is kept
    (a period weighs thousands; ``EXPLAIN_KEEP`` are shown)."""

    score: float
    client: str
    src: int
    dst: int
    reason: Reason
    verdict: str
    priced: tuple[View, Moves, int] | None = None   # where the arithmetic was worked out

    def considered(self) -> Considered:
        detail = arithmetic(*self.priced, self.verdict) if self.priced is not None else ""
        return Considered(self.client, self.src, self.dst, self.reason, self.score,
                          self.verdict or "ok", detail)


def _by_reason(batches: list[Moves]) -> list[Moves]:
    """Runs of batches of one reason merged into one batch each, in order."""
    out: list[list[Moves]] = []
    for m in batches:
        if out and out[-1][0].reason is m.reason:
            out[-1].append(m)
        else:
            out.append([m])
    return [concat(run) for run in out]


def _best_per_group(m: Moves, sc: np.ndarray, n: int) -> np.ndarray:
    """Indices of each pair's ``n`` best candidates (ties: the earlier first), pair by
    pair, best first.  A batch's pairs are contiguous runs (``Moves.group``)."""
    size = m.idx.size
    if size == 0:
        return np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, m.group[1:] != m.group[:-1]])
    counts = np.diff(np.r_[starts, size])
    pos = np.arange(size)
    work = sc.astype(float, copy=True)
    taken = np.zeros(size, bool)
    picks = []
    for r in range(min(n, int(counts.max()))):
        top = np.maximum.reduceat(np.where(taken, -np.inf, work), starts)
        at_top = ~taken & (work == np.repeat(top, counts))
        first = np.minimum.reduceat(np.where(at_top, pos, size), starts)
        first = np.where(counts > r, first, size)
        picks.append(first)
        taken[first[first < size]] = True
    order = np.stack(picks, axis=1).ravel()
    return order[order < size]


def _kept(m: Moves, sc: np.ndarray, stop: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """Of one batch's notes ``picks`` (in the order they are noted), those that can
    still be among the ``EXPLAIN_KEEP`` that ``rebalance`` shows: it shows the first
    distinct (client, destination, verdict)s by score, so a note with that many
    distinct ones before it in its own batch -- higher, or as high and noted earlier --
    never is (and its ``Considered`` is not worth building)."""
    if picks.size <= EXPLAIN_KEEP:
        return picks
    order = picks[np.lexsort((np.arange(picks.size), -sc[picks]))]
    seen: set[tuple[int, int, int]] = set()
    keep = np.zeros(m.idx.size, bool)
    for k, i, d, r in zip(order.tolist(), m.idx[order].tolist(), m.dst[order].tolist(),
                          stop[order].tolist(), strict=True):
        if len(seen) >= EXPLAIN_KEEP:
            break
        keep[k] = True
        seen.add((i, d, r))
    return picks[keep[picks]]


def evaluate(v: View, batches: list[Moves], notes: list[tuple[float, Note]],
             filters: dict[Reason, tuple[Filter, ...]] = FILTERS) -> Picked | None:
    """Best surviving candidate over all batches; notes keep the alternatives."""
    best: Picked | None = None
    for m in _by_reason(batches):
        sc = score(v, m)
        if m.reason is Reason.SWAP:
            chain = swap_filters(v, m)
        elif m.reason is Reason.FAIRNESS:
            chain = FAIRNESS_FILTERS
        else:
            chain = filters[m.reason]
        # which rule stopped each candidate: 0 none yet, else its place in the chain + 1
        stop = np.zeros(m.idx.size, np.int8)
        priced: tuple[Moves, np.ndarray, np.ndarray] | None = None   # what the arithmetic saw
        priced_rules = {0}
        for rule, f in enumerate(chain, start=1):
            alive = stop == 0
            if not alive.any():
                break
            if f in COSTLY:
                # the arithmetic only for the candidates every cheaper rule let through,
                # worked out once: a later costly rule reads the same batch
                if priced is None:
                    priced = (m.take(alive), np.cumsum(alive) - 1, alive)
                hit = np.zeros(m.idx.size, bool)
                hit[priced[2]] = f(v, priced[0])
                hit &= alive
                priced_rules.add(rule)
            else:
                hit = f(v, m) & alive
            stop[hit] = rule
        names = ("", *(f.__name__ for f in chain))
        for k in _kept(m, sc, stop, _best_per_group(m, sc, 3)):
            at = None
            if priced is not None and int(stop[k]) in priced_rules:
                at = (v, priced[0], int(priced[1][k]))
            notes.append((float(sc[k]), Note(float(sc[k]), v.ids[m.idx[k]], int(m.src[k]),
                                             int(m.dst[k]), m.reason, names[stop[k]], at)))
        ok = stop == 0
        if ok.any():
            k = int(np.flatnonzero(ok)[np.argmax(sc[ok])])
            if best is None or sc[k] > best[2]:
                best = (m, k, float(sc[k]))
    return best


def apply_move(v: View, m: Moves, k: int) -> list[tuple[int, int, int]]:
    """Update the view; returns (client, from, to) for each client that moved."""
    src, dst = int(m.src[k]), int(m.dst[k])
    moved = [(int(m.idx[k]), src, dst)]
    if m.partner[k] >= 0:
        moved.append((int(m.partner[k]), dst, src))
    for i, a, b in moved:
        if v.room is not None:
            # the pages that will follow: b's room goes to them, a's grows once they left
            follow = min(v.pages[i] * (1.0 - v.mem_frac[i, b]), max(v.room[b], 0.0))
            v.room[b] -= follow
            v.room[a] += follow
        if v.cores[a] > 0:
            v.loads[a] -= v.ent[i] / v.cores[a]
            v.peak_loads[a] -= v.ent_peak[i] / v.cores[a]
        v.loads[b] += v.ent[i] / v.cores[b]
        v.peak_loads[b] += v.ent_peak[i] / v.cores[b]
        if v.node_var is not None:
            v.node_var[a] -= v.var[i]
            v.node_var[b] += v.var[i]
            v.node_trend[a] -= v.trend[i]
            v.node_trend[b] += v.trend[i]
            v.node_spread[a] -= v.spread[i]
            v.node_spread[b] += v.spread[i]
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
    notes: list[tuple[float, Note]] = []
    swap_turn = v.period % v.s.swap_interval == 0
    for _ in range(v.s.max_moves_per_period):
        before = v.imbalance()
        picked = evaluate(v, fairness_candidates(v), notes)
        if picked is None and v.needs_balance():
            picked = evaluate(v, balance_candidates(v), notes)
        if picked is None and not v.imbalanced():
            picked = evaluate(v, locality_candidates(v) + affinity_candidates(v), notes)
        if picked is None and swap_turn:
            picked = evaluate(v, swap_candidates(v), notes)
        if picked is None:
            break
        m, k, sc = picked
        one = m.take([k])
        detail = (f"imbalance {before:.3f} -> {m.imb_after[k]:.3f}, locality "
                  f"{locality_gain(v, one)[0]:+.1f} pts")
        paid = arithmetic(v, one, 0, "") if v.s.cost_benefit_enable else ""
        if paid:
            detail += f"; {paid}"
        for i, a, b in apply_move(v, m, k):
            decision.actions.append(SetHome(v.ids[i], a, b, m.reason, sc, detail))
            notes.append((np.inf, Note(sc, v.ids[i], a, b, m.reason, "taken")))
    notes.sort(key=lambda t: -t[0])
    seen = set()
    for _, c in notes:
        key = (c.client, c.dst, c.reason, c.verdict or "ok")   # a swap and a move both show
        if key not in seen and len(seen) < EXPLAIN_KEEP:
            seen.add(key)
            decision.considered.append(c.considered())
