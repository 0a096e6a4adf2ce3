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

import numpy as np

from homenode.model import Considered, Decision, Reason, SetHome
from homenode.policy.fairness import FAIRNESS_FILTERS, fairness_candidates
from homenode.policy.moves import NONE, Moves, View, make_moves, movable
from homenode.policy.payoff import arithmetic, does_not_pay, rotation_does_not_repay
from homenode.policy.rules import FILTERS, Filter, locality_gain, score
from homenode.policy.swaps import swap_candidates, swap_filters

EXPLAIN_KEEP = 24   # alternatives kept per period for `explain`
COSTLY = (does_not_pay, rotation_does_not_repay)   # run on the survivors only
PRICED_VERDICTS = {"", *(f.__name__ for f in COSTLY)}

__all__ = ["FILTERS", "NONE", "Moves", "View", "make_moves", "movable", "rebalance"]


# --- candidates -----------------------------------------------------------------------

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
            chain = swap_filters(v, m)
        elif m.reason is Reason.FAIRNESS:
            chain = FAIRNESS_FILTERS
        else:
            chain = filters[m.reason]
        priced: tuple[Moves, np.ndarray] | None = None   # the batch the arithmetic saw
        for f in chain:
            alive = verdict == ""
            if not alive.any():
                break
            if f in COSTLY:
                # the arithmetic only for the candidates every cheaper rule let through
                priced = (m.take(alive), np.cumsum(alive) - 1)
                hit = np.zeros(m.idx.size, bool)
                hit[alive] = f(v, priced[0])
            else:
                hit = f(v, m) & alive
            verdict[hit] = f.__name__
        ok = verdict == ""
        for k in np.argsort(-sc, kind="stable")[:3]:
            detail = ""
            if priced is not None and verdict[k] in PRICED_VERDICTS:
                detail = arithmetic(v, priced[0], int(priced[1][k]), verdict[k])
            notes.append((float(sc[k]), Considered(v.ids[m.idx[k]], m.src, m.dst, m.reason,
                                                   float(sc[k]), verdict[k] or "ok",
                                                   detail)))
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
    notes: list[tuple[float, Considered]] = []
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
        detail = (f"imbalance {before:.3f} -> {m.imb_after[k]:.3f}, locality "
                  f"{locality_gain(v, m)[k]:+.1f} pts")
        paid = arithmetic(v, m.take([k]), 0, "") if v.s.cost_benefit_enable else ""
        if paid:
            detail += f"; {paid}"
        for i, a, b in apply_move(v, m, k):
            decision.actions.append(SetHome(v.ids[i], a, b, m.reason, sc, detail))
            notes.append((np.inf, Considered(v.ids[i], a, b, m.reason, sc, "taken")))
    notes.sort(key=lambda t: -t[0])
    seen = set()
    for _, c in notes:
        key = (c.client, c.dst, c.reason, c.verdict)   # a swap and a move both show
        if key not in seen and len(seen) < EXPLAIN_KEEP:
            seen.add(key)
            decision.considered.append(c)
