"""Step 2 -- dynamic rebalancing, as a pipeline: candidates -> filters -> scores -> pick.

Every ``rebalance_period`` the rebalancer looks at node loads (entitled CPU / cores):

* **balance moves** -- when max - min load >= ``mig_imbalance_threshold``, it considers
  moving each client of an above-average node to each below-average node;
* **locality moves** -- otherwise, it considers moving a client back to the node that
  holds most of its memory.

Each candidate passes the filters below (each one names the rule that stops a move, which
is what ``homenode explain`` shows) and is scored by the balance it gains plus the
locality it gains; the best one is taken, loads are updated, and up to
``max_moves_per_period`` moves are made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from homenode.model import Considered, Decision, Reason, SetHome, Snapshot
from homenode.settings import Settings

EXPLAIN_KEEP = 24   # alternatives kept per period for `explain`


@dataclass
class View:
    """What the rebalancer knows during one period; updated as moves are picked."""

    s: Settings
    now: float
    ids: list[str]
    home: np.ndarray        # node index per client (updated as moves are made)
    since: np.ndarray       # time of last home change
    ent: np.ndarray         # entitled cores per client
    loads: np.ndarray       # per node
    cores: np.ndarray
    mem_frac: np.ndarray    # (C, N) fraction of each client's pages per node
    managed: np.ndarray
    res: np.ndarray         # reservation per client, cores
    reserved: np.ndarray    # per node: sum of reservations homed there
    distance: np.ndarray

    def imbalance(self) -> float:
        live = self.loads[self.cores > 0]
        return float(live.max() - live.min()) if live.size > 1 else 0.0


@dataclass
class Moves:
    """A batch of candidate moves of clients ``idx`` from ``src`` to ``dst``."""

    reason: Reason
    idx: np.ndarray
    src: int
    dst: int
    imb_before: float
    imb_after: np.ndarray
    load_src_after: np.ndarray
    load_dst_after: np.ndarray

    @property
    def gain(self) -> np.ndarray:
        return self.imb_before - self.imb_after


def make_moves(v: View, reason: Reason, idx: np.ndarray, src: int, dst: int) -> Moves:
    """New imbalance if each client in ``idx`` alone moved from src to dst."""
    live = v.cores > 0
    others = live.copy()
    others[[src, dst]] = False
    hi = v.loads[others].max() if others.any() else -np.inf
    lo = v.loads[others].min() if others.any() else np.inf
    e = v.ent[idx]
    new_src = v.loads[src] - e / v.cores[src] if v.cores[src] > 0 else np.zeros(idx.size)
    new_dst = v.loads[dst] + e / v.cores[dst]
    pts = [new_dst] + ([new_src] if live[src] else [])
    imb_after = np.maximum.reduce([np.full(idx.size, hi), *pts]) - \
        np.minimum.reduce([np.full(idx.size, lo), *pts])
    return Moves(reason, idx, src, dst, v.imbalance(), imb_after, new_src, new_dst)


# --- filters: each returns the mask of candidates it rejects --------------------------

def too_soon(v: View, m: Moves) -> np.ndarray:
    """The client changed home less than ``min_residence`` ago."""
    return v.now - v.since[m.idx] < v.s.min_residence


def gain_below_mig_threshold(v: View, m: Moves) -> np.ndarray:
    """The move cuts the imbalance by less than ``mig_threshold``."""
    return m.gain < v.s.mig_threshold


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


def breaks_reservation(v: View, m: Moves) -> np.ndarray:
    """The destination cannot honour the client's reservation beside the others'."""
    return v.reserved[m.dst] + v.res[m.idx] > v.cores[m.dst] + 1e-9


def over_core_cap(v: View, m: Moves) -> np.ndarray:
    """A locality move would push the destination above ``core_cap_ratio``."""
    return m.load_dst_after > v.s.core_cap_ratio


def creates_imbalance(v: View, m: Moves) -> np.ndarray:
    """A locality move would leave an imbalance the balancer would undo next period."""
    limit = max(m.imb_before, v.s.mig_imbalance_threshold)
    return m.imb_after >= limit


def locality_gain_too_small(v: View, m: Moves) -> np.ndarray:
    """A locality move makes fewer than ``locality_mig_min_gain`` points local."""
    return locality_gain(v, m) < v.s.locality_mig_min_gain


Filter = Callable[[View, Moves], np.ndarray]
BALANCE_FILTERS: tuple[Filter, ...] = (too_soon, breaks_reservation, would_thrash,
                                       gain_below_mig_threshold)
LOCALITY_FILTERS: tuple[Filter, ...] = (too_soon, breaks_reservation, locality_gain_too_small,
                                        over_core_cap, creates_imbalance)


# --- scores ---------------------------------------------------------------------------

def balance_gain(v: View, m: Moves) -> np.ndarray:
    """Percentage points of imbalance removed."""
    return 100.0 * m.gain


def locality_gain(v: View, m: Moves) -> np.ndarray:
    """Percentage points of the client's memory that becomes local (negative: lost)."""
    return 100.0 * (v.mem_frac[m.idx, m.dst] - v.mem_frac[m.idx, m.src])


def score(v: View, m: Moves) -> np.ndarray:
    s = v.s.locality_weight_mem * locality_gain(v, m)
    if m.reason is Reason.BALANCE:
        s = s + v.s.balance_weight * balance_gain(v, m)
    # Among equals, prefer the nearer destination (its remote pages cost less until moved).
    return s - 1e-3 * v.distance[m.src, m.dst]


# --- candidates -----------------------------------------------------------------------

def balance_candidates(v: View) -> list[Moves]:
    """Clients of above-average nodes to each below-average node."""
    live = v.cores > 0
    mean = v.loads[live].mean()
    movable = v.managed & (v.home >= 0) & (v.ent > 0)
    out = []
    for src in np.flatnonzero(live & (v.loads > mean)):
        idx = np.flatnonzero(movable & (v.home == src))
        if idx.size == 0:
            continue
        for dst in np.flatnonzero(live & (v.loads < mean)):
            out.append(make_moves(v, Reason.BALANCE, idx, int(src), int(dst)))
    return out


def locality_candidates(v: View) -> list[Moves]:
    """Clients whose memory mostly sits on a node other than their home, to that node."""
    placed = v.managed & (v.home >= 0)
    idx_all = np.flatnonzero(placed)
    if idx_all.size == 0:
        return []
    best = np.argmax(v.mem_frac[idx_all], axis=1)
    away = best != v.home[idx_all]
    out = []
    for src, dst in sorted({(int(a), int(b)) for a, b in
                            zip(v.home[idx_all][away], best[away], strict=True)}):
        if v.cores[dst] <= 0:
            continue
        idx = idx_all[away & (v.home[idx_all] == src) & (best == dst)]
        out.append(make_moves(v, Reason.LOCALITY, idx, src, dst))
    return out


# --- pick -----------------------------------------------------------------------------

def evaluate(v: View, batches: list[Moves], filters: tuple[Filter, ...],
             notes: list[tuple[float, Considered]]) -> tuple[Moves, int, float] | None:
    """Best surviving candidate over all batches; notes keep the alternatives."""
    best: tuple[Moves, int, float] | None = None
    for m in batches:
        sc = score(v, m)
        verdict = np.full(m.idx.size, "", dtype=object)
        for f in filters:
            hit = f(v, m) & (verdict == "")
            verdict[hit] = f.__name__
        ok = verdict == ""
        for k in np.argsort(-sc, kind="stable")[:3]:
            why = verdict[k] or "ok"
            notes.append((float(sc[k]), Considered(v.ids[m.idx[k]], m.src, m.dst, m.reason,
                                                   float(sc[k]), why)))
        if ok.any():
            k = int(np.flatnonzero(ok)[np.argmax(sc[ok])])
            if best is None or sc[k] > best[2]:
                best = (m, k, float(sc[k]))
    return best


def apply_move(v: View, m: Moves, k: int) -> None:
    i = int(m.idx[k])
    e = v.ent[i]
    if v.cores[m.src] > 0:
        v.loads[m.src] -= e / v.cores[m.src]
    v.loads[m.dst] += e / v.cores[m.dst]
    v.reserved[m.src] -= v.res[i]
    v.reserved[m.dst] += v.res[i]
    v.home[i] = m.dst
    v.since[i] = v.now


def rebalance(v: View, decision: Decision) -> None:
    """Up to ``max_moves_per_period`` moves: balance first, locality when balanced."""
    notes: list[tuple[float, Considered]] = []
    for _ in range(v.s.max_moves_per_period):
        before = v.imbalance()
        if before >= v.s.mig_imbalance_threshold:
            picked = evaluate(v, balance_candidates(v), BALANCE_FILTERS, notes)
        else:
            picked = evaluate(v, locality_candidates(v), LOCALITY_FILTERS, notes)
        if picked is None:
            break
        m, k, sc = picked
        i = int(m.idx[k])
        detail = (f"imbalance {before:.3f} -> {m.imb_after[k]:.3f}, locality "
                  f"{locality_gain(v, m)[k]:+.1f} pts")
        decision.actions.append(SetHome(v.ids[i], m.src, m.dst, m.reason, sc, detail))
        notes.append((np.inf, Considered(v.ids[i], m.src, m.dst, m.reason, sc, "taken")))
        apply_move(v, m, k)
    notes.sort(key=lambda t: -t[0])
    seen = set()
    for _, c in notes:
        key = (c.client, c.dst, c.reason)
        if key not in seen and len(seen) < EXPLAIN_KEEP:
            seen.add(key)
            decision.considered.append(c)
