"""The ESXi-style policy: initial placement, rebalancing, paced page migration."""

from __future__ import annotations

import math

import numpy as np

from homenode.model import Decision, Snapshot
from homenode.policy.base import register
from homenode.policy.load import client_vectors, entitlements, node_loads
from homenode.policy.pacing import pace
from homenode.policy.placement import place_new
from homenode.policy.rebalance import View, rebalance
from homenode.settings import Settings


@register("esxi")
class EsxiPolicy:
    name = "esxi"

    def __init__(self, settings: Settings | None = None):
        self.s = settings or Settings()
        self._last_rebalance = -math.inf
        self._last_call: float | None = None

    def decide(self, snap: Snapshot) -> Decision:
        d = Decision()
        if not snap.clients:
            return d
        cap, shares, res = client_vectors(snap)
        ent = entitlements(snap, cap, shares, res)
        home = snap.home.copy()
        place_new(snap, self.s, home, ent, cap, d)

        if snap.time - self._last_rebalance >= self.s.rebalance_period - 1e-9:
            self._last_rebalance = snap.time
            rebalance(self._view(snap, home, ent, res), d)

        dt = 0.0 if self._last_call is None else snap.time - self._last_call
        self._last_call = snap.time
        pace(snap, self.s, home, dt, d)
        return d

    def _view(self, snap: Snapshot, home: np.ndarray, ent: np.ndarray,
              res: np.ndarray) -> View:
        topo = snap.topology
        total = snap.pages.sum(axis=1, keepdims=True)
        mem_frac = np.divide(snap.pages, total, out=np.zeros(snap.pages.shape, float),
                             where=total > 0)
        placed = home >= 0
        return View(
            s=self.s, now=snap.time, ids=[c.id for c in snap.clients], home=home,
            since=snap.home_since.copy(), ent=ent, loads=node_loads(snap, home, ent),
            cores=topo.cores, mem_frac=mem_frac, managed=snap.managed, res=res,
            reserved=np.bincount(home[placed], res[placed], topo.n).astype(float),
            distance=topo.distance)
