"""Placement of a client that already has memory (a process the daemon found running, a
VM restarted with its pages in place): the same cost-benefit test as every other home
change (``payoff.py``).

The client is weighed as if it were homed on the node holding most of its memory
(*staying* copies nothing) and each node with more headroom is a candidate move from
there: it is taken only if it pays -- the CPU it gains over its expected stay (from
the forecasts; a client not seen before starts with ``forecast.FRESH_SPREAD``) above the
remote accesses while its memory follows at the paced rate, the copy's CPU and the
chance of moving back, by ``cost_margin``.  Of the moves that pay, the one that gains
the most net of its cost wins; where none pays the client stays by its memory, and
``explain`` shows the arithmetic of the best refused one.

A first placement is not a home change: whichever node it picks it sets one home, so
``payoff`` charges it no fixed per-move overhead.  And a client whose resident pages
follow within one rebalance period at the paced rate, and that has no room on their
node, is placed by headroom alone (the nearest of the best): its memory is home before
the policy next looks.  On a saturated host, where no node gains total work, weighing
those few pages kept every arrival on the node they landed on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from homenode.model import Reason, Snapshot
from homenode.policy.moves import View, make_moves
from homenode.policy.payoff import payoff
from homenode.settings import Settings


@dataclass
class Adopted:
    node: int
    detail: str


class Adopter:
    """Builds the view the rule needs from a snapshot, the homes so far this tick and
    the policy's forecasts; ``choose`` is called per client by ``place_new``."""

    def __init__(self, snap: Snapshot, s: Settings, home: np.ndarray, ent: np.ndarray,
                 forecast: tuple[np.ndarray, np.ndarray, np.ndarray], lat: np.ndarray):
        self.snap, self.s, self.home, self.ent = snap, s, home, ent
        self.trend, self.var, self.spread = forecast
        self.lat = lat
        total = snap.pages.sum(axis=1, keepdims=True)
        self.mem_frac = np.divide(snap.pages, total, out=np.zeros(snap.pages.shape, float),
                                  where=total > 0)

    def choose(self, i: int, used: np.ndarray, score: np.ndarray,
               cpu: float) -> Adopted | None:
        """Node for client i (which has resident memory), or None to keep ``score``'s
        pick (the client may not stay: its memory's node is not allowed or full)."""
        snap = self.snap
        stay = int(np.argmax(snap.pages[i]))
        if not np.isfinite(score[stay]):
            return None
        better = np.flatnonzero(np.isfinite(score) & (score > score[stay]))
        if better.size == 0:
            return Adopted(stay, "stays by its memory: no node has more headroom")
        resident = int(snap.pages[i].sum())
        topo = snap.topology
        if (resident < self.s.page_mig_rate_max * self.s.rebalance_period
                and used[stay] + cpu > topo.cores[stay] + 1e-9):
            # No room by its pages, and pages that have followed by the next rebalance
            # are not worth staying by: where every node is busy no placement gains work,
            # and weighing them would pile every arrival onto the node they landed on.
            # Most free CPU first, then the nearest, then the most memory: free memory
            # differs a little on every real node and would otherwise decide alone.
            cpu_free = (topo.cores - used)[better] / np.maximum(topo.cores[better], 1e-9)
            top = better[cpu_free >= cpu_free.max() - 1e-9]
            k = int(top[np.lexsort((-score[top], topo.distance[stay, top]))[0]])
            return Adopted(k, f"no room on node {stay}, and its {resident} resident pages "
                              f"follow within one rebalance period: node {k} has the most "
                              f"headroom")
        v = self._view(i, stay, used, cpu)
        m = make_moves(v, Reason.INITIAL, np.full(better.size, i), stay, better)
        p = payoff(v, m)
        net = p.gain - (1.0 + p.margin) * p.cost
        pays = p.pays
        if pays.any():
            k = int(np.flatnonzero(pays)[np.argmax(net[pays])])
            return Adopted(int(better[k]), f"leaves its memory on node {stay}: {p.text(k)}")
        k = int(np.argmax(net))
        return Adopted(stay, f"stays by its memory on node {stay}; best other, node "
                             f"{int(better[k])}: {p.text(k)}")

    def _view(self, i: int, stay: int, used: np.ndarray, cpu: float) -> View:
        snap, s = self.snap, self.s
        topo = snap.topology
        n = topo.n
        home = self.home.copy()
        home[i] = stay
        ent = self.ent.copy()
        ent[i] = cpu
        placed = home >= 0
        loads = np.where(topo.cores > 0, (used + np.eye(n)[stay] * cpu)
                         / np.maximum(topo.cores, 1e-9), 0.0)
        vec = snap.vectors()

        def per_node(x: np.ndarray) -> np.ndarray:
            return np.bincount(home[placed], x[placed], n).astype(float)

        return View(
            s=s, now=snap.time, period=0, ids=[c.id for c in snap.clients], home=home,
            since=snap.home_since.copy(), ent=ent, ent_peak=ent, loads=loads,
            peak_loads=loads.copy(), cores=topo.cores, mem_frac=self.mem_frac,
            managed=vec.managed, allowed=vec.allowed, res=vec.reservation,
            reserved=per_node(vec.reservation), distance=topo.distance, vm=vec.vm,
            aff=vec.affinity, swapped=np.full(len(snap.clients), -np.inf),
            owed=np.zeros(len(snap.clients)), pages=snap.pages.sum(axis=1).astype(float),
            lat=self.lat, var=self.var, trend=self.trend, node_var=per_node(self.var),
            spread=self.spread, node_spread=per_node(self.spread),
            node_trend=per_node(self.trend), deficit=np.zeros(len(snap.clients)))
