"""The ESXi-style policy: initial placement, rebalancing, paced page migration."""

from __future__ import annotations

import math

import numpy as np

from homenode.costmodel import latency_ratio, parse_slit_latency
from homenode.model import Decision, Reason, SetHome, Snapshot
from homenode.policy.adoption import Adopter
from homenode.policy.base import register
from homenode.policy.forecast import Forecaster
from homenode.policy.history import ChangeTimes, Counter, PeakTracker, Smoother
from homenode.policy.load import client_vectors, entitlements, node_loads
from homenode.policy.pacing import pace
from homenode.policy.placement import place_new
from homenode.policy.rebalance import View, rebalance
from homenode.settings import Settings

MIN_OWED_ENTITLEMENT = 0.05   # cores: below this a client's shortfall is noise


@register("esxi")
class EsxiPolicy:
    name = "esxi"

    def __init__(self, settings: Settings | None = None):
        self.s = settings or Settings()
        self._last_rebalance = -math.inf
        self._last_call: float | None = None
        self._periods = 0
        self._peaks = PeakTracker(self.s.affinity_peak_window, self.s.rebalance_period)
        self._owed = Counter(0.0)
        self._swapped = Counter(-math.inf)
        self._smooth = Smoother(self.s.load_smoothing)
        self._imbalanced_for = 0
        self._forecast = Forecaster()
        self._deficit = Counter(0.0)
        self._waited = Counter(0.0)
        self._changes = ChangeTimes(self.s.home_change_limit)
        self._lat: tuple | None = None
        self._ids: tuple[tuple, list[str]] = ((), [])

    def decide(self, snap: Snapshot) -> Decision:
        d = Decision()
        if not snap.clients:
            return d
        cap, shares, res = client_vectors(snap)
        ent = entitlements(snap, cap, shares, res)
        home = snap.home.copy()

        def adopt() -> Adopter:
            return Adopter(snap, self.s, home, ent,
                           self._forecast.peek(snap.clients, snap.demand),
                           self._latency(snap.topology.distance))

        place_new(snap, self.s, home, ent, cap, d,
                  adopt=adopt if self.s.cost_benefit_enable else None)
        smooth = self._smooth.update(snap.clients, snap.demand, snap.time)

        if snap.time - self._last_rebalance >= self.s.rebalance_period - 1e-9:
            self._last_rebalance = snap.time
            # Rebalancing weighs the smoothed demand; fairness compares what a client
            # received with what it is owed now.
            ent_avg = entitlements(snap, cap, shares, res, demand=smooth)
            view = self._view(snap, home, ent, ent_avg, cap, res)
            self._imbalanced_for = self._imbalanced_for + 1 if view.imbalanced() else 0
            view.imbalanced_for = self._imbalanced_for
            rebalance(view, d)
            self._periods += 1
            moved = [snap.index_of(a.client) for a in d.actions
                     if isinstance(a, SetHome) and a.reason is not Reason.INITIAL]
            if moved:
                self._changes.record(snap.clients, moved, snap.time)
            self._wait(view, moved)

        dt = None if self._last_call is None else snap.time - self._last_call
        self._last_call = snap.time
        pace(snap, self.s, home, dt, d)
        return d

    def _view(self, snap: Snapshot, home: np.ndarray, ent_now: np.ndarray, ent: np.ndarray,
              cap: np.ndarray, res: np.ndarray) -> View:
        topo = snap.topology
        total = snap.pages.sum(axis=1, keepdims=True)
        if (total > 0).all():
            mem_frac = snap.pages / total
        else:
            mem_frac = np.divide(snap.pages, total, out=np.zeros(snap.pages.shape, float),
                                 where=total > 0)
        placed = home >= 0
        peak = self._peaks.update(snap.clients, snap.demand)
        ent_peak = np.maximum(np.minimum(peak, cap), ent)
        owed = self._owed.get(snap.clients)
        short = (ent_now > MIN_OWED_ENTITLEMENT) & (
            snap.received < (1.0 - self.s.lterm_mig_imbal_threshold) * ent_now)
        owed[:] = np.where(short & placed, owed + 1, 0)
        deficit = self._deficit.get(snap.clients)
        # signed: a client ahead of its entitlement banks credit, and the past fades
        # over cost_horizon, so rotations even out shares over minutes
        keep = math.exp(-self.s.rebalance_period / self.s.cost_horizon)
        deficit[:] = np.where(placed, keep * deficit + (ent_now - snap.received)
                              * self.s.rebalance_period, 0.0)
        _, trend, var, spread = self._forecast.update(snap.clients, snap.demand)
        vec = snap.vectors()
        pages = total[:, 0].astype(float)

        def per_node(x: np.ndarray) -> np.ndarray:
            used = np.bincount(home[placed], x[placed], topo.n)
            return np.where(topo.cores > 0, used / np.maximum(topo.cores, 1e-9), 0.0)

        return View(
            s=self.s, now=snap.time, period=self._periods, ids=self._client_ids(snap.clients),
            home=home, since=snap.home_since.copy(), ent=ent, ent_peak=ent_peak,
            loads=node_loads(snap, home, ent), peak_loads=per_node(ent_peak),
            cores=topo.cores, mem_frac=mem_frac, managed=vec.managed, allowed=vec.allowed,
            res=res, reserved=np.bincount(home[placed], res[placed], topo.n).astype(float),
            distance=topo.distance, vm=vec.vm, aff=vec.affinity,
            swapped=self._swapped.get(snap.clients), owed=owed,
            peaks_known=self._peaks.ready or self.s.affinity_peak_window <= 0,
            pages=pages, lat=self._latency(topo.distance), var=var.copy(), trend=trend.copy(),
            node_var=np.bincount(home[placed], var[placed], topo.n).astype(float),
            spread=spread.copy(),
            node_spread=np.bincount(home[placed], spread[placed], topo.n).astype(float),
            node_trend=np.bincount(home[placed], trend[placed], topo.n).astype(float),
            deficit=deficit, changes=self._changes.oldest(snap.clients),
            waited=self._waited.get(snap.clients),
            priced=np.full(len(snap.clients), -np.inf),
            room=np.maximum(snap.free_pages - self.s.page_mig_free_reserve * topo.mem_pages,
                            0.0).astype(float))

    def _wait(self, v: View, moved: list[int]) -> None:
        """Charge each client the work its best priced move would have gained this
        period; a client with no move that gains, or that just moved, starts again.
        A client none of whose moves was priced (a cheaper rule stopped them) keeps
        what it has: the condition has not been seen to end."""
        w = v.waited
        seen = np.isfinite(v.priced)
        w[:] = np.where(seen, np.where(v.priced > 0.0, w + v.priced * self.s.rebalance_period,
                                       0.0), w)
        w[v.home < 0] = 0.0
        if moved:
            w[moved] = 0.0

    def _client_ids(self, clients: tuple) -> list[str]:
        # hosts reuse one clients tuple while the set is unchanged (history.Aligned)
        if self._ids[0] is not clients:
            self._ids = (clients, [c.id for c in clients])
        return self._ids[1]

    def _latency(self, distance: np.ndarray) -> np.ndarray:
        if self._lat is None or self._lat[0] is not distance:
            table = parse_slit_latency(self.s.slit_latency)
            self._lat = (distance, latency_ratio(distance, table))
        return self._lat[1]
