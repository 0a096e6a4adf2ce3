"""What a run records, and the summary computed from it.

Per sample (each control tick) and client: home node (NHN), home changes so far (NMIG),
local and remote MiB (NLMEM, NRMEM), locality (N%L), CPU demand and received, and --
on the simulator -- progress.  Per node: entitled load, CPU used and free memory.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from homenode.model import ActionResult, Decision, MigratePages, Reason, SetHome, Snapshot
from homenode.policy.load import client_vectors, entitlements, imbalance, node_loads

# A run has converged after an event once every client is at least this local and the
# node loads are this close, and both hold for CONVERGED_HOLD seconds.
CONVERGED_LOCALITY = 0.95
CONVERGED_IMBALANCE = 0.10
CONVERGED_HOLD = 10.0
WINDOW_10MIN = 600.0


@dataclass
class Sample:
    time: float
    ids: tuple[str, ...]
    home: np.ndarray
    local: np.ndarray          # pages
    total: np.ndarray          # pages
    demand: np.ndarray
    received: np.ndarray
    nmig: np.ndarray
    loads: np.ndarray          # per node, entitled
    used: np.ndarray           # per node, received / cores
    free: np.ndarray           # per node, pages
    imbalance: float
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def locality(self) -> np.ndarray:
        return np.where(self.total > 0, self.local / np.maximum(self.total, 1), 1.0)


@dataclass
class ActionRow:
    time: float
    client: str
    kind: str
    src: int
    dst: int
    pages: int
    reason: str
    score: float
    ok: bool
    detail: str


class RunRecorder:
    """Collects samples and actions; ``extra`` adds host-only per-client figures."""

    def __init__(self, extra=None):
        self.samples: list[Sample] = []
        self.actions: list[ActionRow] = []
        self.decisions: list[dict[str, Any]] = []
        self.home_changes: dict[str, list[float]] = defaultdict(list)
        self.by_reason: Counter[str] = Counter()
        self.pages_requested = 0
        self._extra = extra
        self.rights = RightsTally()

    def decision(self, snap: Snapshot, decision: Decision,
                 applied: list[ActionResult]) -> None:
        oks = [r.ok for r in applied] or [True] * len(decision.actions)
        for a, ok in zip(decision.actions, oks, strict=False):
            if isinstance(a, SetHome):
                self.actions.append(ActionRow(snap.time, a.client, "home", a.src, a.dst, 0,
                                              str(a.reason), a.score, ok, a.detail))
                if ok and a.reason is not Reason.INITIAL:
                    self.home_changes[a.client].append(snap.time)
                    self.by_reason[str(a.reason)] += 1
            elif isinstance(a, MigratePages):
                self.actions.append(ActionRow(snap.time, a.client, "pages", a.src, a.dst,
                                              a.pages, str(a.reason), a.score, ok, a.detail))
                if ok:
                    self.pages_requested += a.pages
        if decision.considered:
            self.decisions.append({
                "time": snap.time,
                "considered": [
                    {"client": c.client, "src": c.src, "dst": c.dst, "reason": str(c.reason),
                     "score": round(c.score, 4), "verdict": c.verdict,
                     **({"detail": c.detail} if c.detail else {})}
                    for c in decision.considered]})

    def sample(self, snap: Snapshot) -> None:
        cap, shares, res = client_vectors(snap)
        ent = entitlements(snap, cap, shares, res)
        loads = node_loads(snap, snap.home, ent)
        topo = snap.topology
        placed = snap.home >= 0
        used = np.bincount(snap.home[placed], snap.received[placed], topo.n)
        rows = np.arange(len(snap.clients))
        local = np.where(placed, snap.pages[rows, np.maximum(snap.home, 0)], 0)
        ids = tuple(c.id for c in snap.clients)
        self.rights.sample(snap, ent)
        nmig = np.array([len(self.home_changes.get(i, ())) for i in ids], np.int64)
        self.samples.append(Sample(
            snap.time, ids, snap.home.copy(), local, snap.pages.sum(axis=1), snap.demand.copy(),
            snap.received.copy(), nmig, loads,
            np.where(topo.cores > 0, used / np.maximum(topo.cores, 1e-9), 0.0),
            snap.free_pages.copy(), imbalance(loads, topo.cores),
            self._extra() if self._extra else {}))


RESERVATION_SLACK = 0.01   # cores: shortfalls below this are rounding, not violations


class RightsTally:
    """Resource rights and the placement rules of issue 5, checked at every sample:
    reservations and pool limits honoured, wide VMs' slices close together, affinity
    groups together, and each client's long-run share of what it was entitled to."""

    def __init__(self) -> None:
        self.samples = 0
        self.reservation_violations = 0
        self.pool_limit_violations = 0
        self.wide_max_distance: list[tuple[float, int]] = []     # (time, max distance)
        self.groups_together: list[tuple[float, float]] = []     # (time, fraction)
        self.received: dict[str, float] = defaultdict(float)
        self.entitled: dict[str, float] = defaultdict(float)

    def sample(self, snap: Snapshot, ent: np.ndarray) -> None:
        self.samples += 1
        vec = snap.vectors()
        placed = snap.home >= 0
        owed = np.minimum(vec.reservation, np.minimum(snap.demand, vec.cpu_cap))
        self.reservation_violations += int(
            (placed & (snap.received < owed - RESERVATION_SLACK)).sum())
        if snap.pools:
            self.pool_limit_violations += _pool_violations(snap)
        for cid, r, e in zip((c.id for c in snap.clients), snap.received, ent, strict=True):
            self.received[cid] += float(r)
            self.entitled[cid] += float(e)
        dist = snap.topology.distance
        if (vec.vm >= 0).any():
            worst = 0
            for g in np.unique(vec.vm[vec.vm >= 0]):
                homes = snap.home[(vec.vm == g) & placed]
                if homes.size > 1:
                    worst = max(worst, int(dist[np.ix_(homes, homes)].max()))
            self.wide_max_distance.append((snap.time, worst))
        if (vec.affinity >= 0).any():
            groups = np.unique(vec.affinity[vec.affinity >= 0])
            together = sum(np.unique(snap.home[(vec.affinity == g) & placed]).size <= 1
                           for g in groups)
            self.groups_together.append((snap.time, together / groups.size))

    def summary(self, duration: float) -> dict[str, Any]:
        out: dict[str, Any] = {"reservation_violations": self.reservation_violations,
                               "pool_limit_violations": self.pool_limit_violations}
        shares = [self.received[c] / self.entitled[c] for c in self.entitled
                  if self.entitled[c] > 1.0]
        out["min_entitlement_share"] = _r(min(shares)) if shares else None
        if self.wide_max_distance:
            late = [d for t, d in self.wide_max_distance if t >= duration / 2]
            out["wide_max_distance_settled"] = max(late) if late else None
        if self.groups_together:
            late = [f for t, f in self.groups_together if t >= duration / 2]
            out["affinity_groups_together"] = _r(sum(late) / len(late)) if late else None
        return out


def _pool_violations(snap: Snapshot) -> int:
    """Pools whose clients (in the pool or below it) receive more than the pool's limit."""
    parent = {p.name: p.parent for p in snap.pools}
    used: dict[str, float] = defaultdict(float)
    for c, r in zip(snap.clients, snap.received, strict=True):
        name = c.pool
        while name:
            used[name] += float(r)
            name = parent.get(name, "")
    return sum(used[p.name] > p.limit + RESERVATION_SLACK for p in snap.pools)


def summarize(rec: RunRecorder, *, scenario: str, policy: str, seed: int, duration: float,
              event_times: list[float], wall_s: float,
              totals: dict[str, float] | None = None) -> dict[str, Any]:
    """The summary.json object (keys documented in the README)."""
    half = [s for s in rec.samples if s.time >= duration / 2]
    mean_loc, p5_loc = _locality_stats(half)
    conv = [{"at_s": t, "seconds": _convergence(rec.samples, t)} for t in event_times]
    settled_from = _settled_from(conv, duration)
    late = [s.imbalance for s in rec.samples if s.time >= settled_from]
    totals = totals or {}
    progress, ideal = totals.get("progress"), totals.get("ideal")
    bound = totals.get("bound")
    pages = int(totals.get("pages_migrated", rec.pages_requested))
    conv_known = [c["seconds"] for c in conv]
    return {
        "scenario": scenario,
        "policy": policy,
        "seed": seed,
        "duration_s": duration,
        "sim_speed": round(duration / wall_s, 1) if wall_s > 0 else None,
        "mean_locality": _r(mean_loc),
        "p5_locality": _r(p5_loc),
        "max_imbalance_settled": _r(max(late)) if late else None,
        "convergence_s": conv,
        "convergence_max_s": (None if not conv_known or None in conv_known
                              else max(conv_known)),
        "home_changes": int(sum(rec.by_reason.values())),
        "home_changes_by_reason": dict(sorted(rec.by_reason.items())),
        "max_home_changes_per_client_per_10min": _max_in_window(rec.home_changes),
        "throughput_vs_ideal": _r(progress / ideal) if progress is not None and ideal else None,
        # progress over the per-tick relaxation of sim/bound.py: <= 1 for every policy
        "throughput_vs_bound": _r(progress / bound) if progress is not None and bound else None,
        "pages_migrated": pages,
        "gib_migrated": _r(pages * 4096 / 2**30),
        "clients_seen": len({i for s in rec.samples for i in s.ids}),
        **rec.rights.summary(duration),
    }


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def _locality_stats(samples: list[Sample]) -> tuple[float | None, float | None]:
    if not samples:
        return None, None
    local = np.concatenate([s.local for s in samples]).astype(float)
    total = np.concatenate([s.total for s in samples]).astype(float)
    if total.sum() <= 0:
        return 1.0, 1.0
    mean = local.sum() / total.sum()
    loc = np.where(total > 0, local / np.maximum(total, 1), 1.0)
    order = np.argsort(loc, kind="stable")
    cum = np.cumsum(total[order])
    k = int(np.searchsorted(cum, 0.05 * cum[-1]))
    return mean, float(loc[order][min(k, len(order) - 1)])


def converged(s: Sample) -> bool:
    return bool((s.locality >= CONVERGED_LOCALITY).all()) and s.imbalance <= CONVERGED_IMBALANCE


def _convergence(samples: list[Sample], t0: float) -> float | None:
    """Seconds from t0 until a run of converged samples lasting CONVERGED_HOLD begins."""
    start = None
    for s in samples:
        if s.time < t0:
            continue
        if converged(s):
            if start is None:
                start = s.time
            if s.time - start >= CONVERGED_HOLD:
                return round(start - t0, 3)
        else:
            start = None
    return None


def _settled_from(conv: list[dict[str, Any]], duration: float) -> float:
    if not conv:
        return 0.0
    last = conv[-1]
    wait = last["seconds"] if last["seconds"] is not None else 60.0
    return min(last["at_s"] + wait, duration)


def _max_in_window(changes: dict[str, list[float]]) -> int:
    best = 0
    for times in changes.values():
        ts = sorted(times)
        j = 0
        for i, t in enumerate(ts):
            while t - ts[j] >= WINDOW_10MIN:
                j += 1
            best = max(best, i - j + 1)
    return best
