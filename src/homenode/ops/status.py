"""The live status model: what `homenode top`, the status API and the exporter show.

``StatusRecorder`` is a recorder like ``metrics.RunRecorder`` (``decision`` and
``sample``), so the control loop feeds it through ``loop.Tee`` beside the run's own
recorder.  It keeps only the present plus short, bounded histories -- the last sample,
the last few home changes, a few decisions per client for ``explain`` -- so a daemon
that runs for months holds constant memory whatever the churn.

The loop thread writes and the API/exporter threads read; one lock guards the state.
A sample stores the snapshot by reference (hosts build a fresh one per tick and nobody
mutates it afterwards) and the JSON view is built only when someone asks for it, so a
tick pays a few numpy operations, not a Python loop over every client.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from homenode import __version__
from homenode.model import (
    Action,
    ActionResult,
    Considered,
    Decision,
    MigratePages,
    Reason,
    SetHome,
    Snapshot,
    Topology,
)
from homenode.policy.load import client_vectors, entitlements, imbalance, node_loads
from homenode.settings import Settings
from homenode.units import pages_to_mib

SCHEMA_VERSION = 1
RECENT_ACTIONS = 200        # home changes (and as many page grants) kept for the API
DECISIONS_PER_CLIENT = 20   # decision records per client kept for `explain`
GONE_KEPT = 256             # departed clients whose history `explain` can still show
# Tick-duration histogram buckets (s): the daemon's goal is <= 10 ms per tick.
TICK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class ClientHistory:
    """What the recorder remembers about one client beyond the current sample."""

    nmig: Counter[str] = field(default_factory=Counter)      # home changes by reason
    pages_migrated: int = 0
    pages_by_route: Counter[tuple[int, int]] = field(default_factory=Counter)
    last_pages_at: float | None = None
    decisions: deque[dict[str, Any]] = field(
        default_factory=lambda: deque(maxlen=DECISIONS_PER_CLIENT))


class StatusRecorder:
    """Present state and short histories of a run, for the API, `top` and the exporter."""

    def __init__(self, topology: Topology | None = None, *, source: str = "daemon",
                 policy: str = "", scenario: str = "", settings: Settings | None = None,
                 keep_actions: int = RECENT_ACTIONS):
        self.topology = topology
        self.source = source
        self.policy = policy
        self.scenario = scenario
        self.settings = settings
        self._lock = threading.Lock()
        self._snap: Snapshot | None = None
        self._loads = np.zeros(0)
        self._used = np.zeros(0)
        self._clients: OrderedDict[str, ClientHistory] = OrderedDict()
        self._present: frozenset[str] = frozenset()
        self._known_clients: tuple = ()
        self._actions: deque[dict[str, Any]] = deque(maxlen=keep_actions)
        self._page_actions: deque[dict[str, Any]] = deque(maxlen=keep_actions)
        self.by_reason: Counter[str] = Counter()
        self.placements = 0
        self.pages_migrated = 0
        self.ticks = 0
        self.started = time.time()
        self._tick_start: float | None = None
        self.tick_last: float | None = None
        self._tick_counts = [0] * (len(TICK_BUCKETS) + 1)
        self._tick_sum = 0.0

    # --- the recorder interface --------------------------------------------------------

    def tick_started(self) -> None:
        """Mark the start of a tick (``TimedHost`` calls it from ``snapshot()``)."""
        self._tick_start = time.perf_counter()

    def decision(self, snap: Snapshot, decision: Decision,
                 applied: list[ActionResult]) -> None:
        results = list(applied) + [None] * (len(decision.actions) - len(applied))
        with self._lock:
            per_client: dict[str, dict[str, Any]] = {}
            for a, r in zip(decision.actions, results, strict=False):
                self._count(snap.time, a, r, per_client)
            for c in decision.considered:
                rec = per_client.setdefault(c.client, _record(snap.time))
                rec["considered"].append(considered_row(c))
            for cid, rec in per_client.items():
                if rec["actions"] or rec["considered"]:
                    self._history(cid).decisions.append(rec)

    def sample(self, snap: Snapshot) -> None:
        cap, shares, res = client_vectors(snap)
        loads = node_loads(snap, snap.home, entitlements(snap, cap, shares, res))
        topo = snap.topology
        placed = snap.home >= 0
        used = np.bincount(snap.home[placed], snap.received[placed], topo.n)
        used = np.where(topo.cores > 0, used / np.maximum(topo.cores, 1e-9), 0.0)
        with self._lock:
            if self._tick_start is not None:
                self._time_tick(time.perf_counter() - self._tick_start)
                self._tick_start = None
            self._snap, self._loads, self._used = snap, loads, used
            self.topology = topo
            self.ticks += 1
            if snap.clients is not self._known_clients:
                self._known_clients = snap.clients
                self._present = frozenset(c.id for c in snap.clients)
                self._prune()

    # --- bookkeeping -------------------------------------------------------------------

    def _count(self, now: float, a: Action, result: ActionResult | None,
               per_client: dict[str, dict[str, Any]]) -> None:
        ok = result.ok if result is not None else True
        row = action_row(now, a, ok)
        if isinstance(a, SetHome):
            self._actions.append(row)
            per_client.setdefault(a.client, _record(now))["actions"].append(row)
            if ok and a.reason is Reason.INITIAL:
                self.placements += 1
            elif ok:
                self.by_reason[str(a.reason)] += 1
                self._history(a.client).nmig[str(a.reason)] += 1
        elif isinstance(a, MigratePages):
            # Page grants come every tick for every client with remote memory: they are
            # summed per route instead of filling the decision history.
            # A host that reports the pages it really moved (Linux: ``Result.moved``)
            # is believed; otherwise the grant counts (the simulator moves all of it).
            moved = result.moved if result is not None else None
            pages = int(moved) if isinstance(moved, int) else int(a.pages)
            if moved is not None:
                row["moved"] = pages
            self._page_actions.append(row)
            if ok and pages > 0:
                h = self._history(a.client)
                h.pages_migrated += pages
                h.pages_by_route[(a.src, a.dst)] += pages
                h.last_pages_at = now
                self.pages_migrated += pages

    def _history(self, cid: str) -> ClientHistory:
        h = self._clients.get(cid)
        if h is None:
            h = self._clients[cid] = ClientHistory()
        return h

    def _prune(self) -> None:
        """Keep present clients and the GONE_KEPT most recently departed ones."""
        gone = [cid for cid in self._clients if cid not in self._present]
        for cid in gone[:max(0, len(gone) - GONE_KEPT)]:
            del self._clients[cid]

    def _time_tick(self, seconds: float) -> None:
        self.tick_last = seconds
        self._tick_sum += seconds
        k = next((i for i, b in enumerate(TICK_BUCKETS) if seconds <= b), len(TICK_BUCKETS))
        self._tick_counts[k] += 1

    # --- views (JSON-ready dicts) ------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The whole status document served by the API (see docs/operations.md).

        Only references and small copies are taken under the lock; the per-client rows
        are built after releasing it, so a reader never stalls the control loop."""
        with self._lock:
            snap, loads, used = self._snap, self._loads, self._used
            hist = self._present_histories() if snap is not None else {}
            doc: dict[str, Any] = {
                "version": SCHEMA_VERSION, "homenode": __version__, "source": self.source,
                "policy": self.policy, "scenario": self.scenario,
                "started": round(self.started, 3), "ticks": self.ticks,
                "time": None if snap is None else round(snap.time, 3),
                "tick_seconds": _num(self.tick_last, 6),
                "topology": self._topology_view(),
                "nodes": [], "clients": [], "imbalance": None,
                "home_changes_by_reason": dict(sorted(self.by_reason.items())),
                "placements": self.placements, "pages_migrated": self.pages_migrated,
                "actions": list(self._actions), "page_actions": list(self._page_actions)[-20:],
            }
        if snap is not None:
            doc["nodes"] = nodes_view(snap, loads, used)
            doc["clients"] = clients_view(snap, hist)
            doc["imbalance"] = _num(imbalance(loads, snap.topology.cores))
        return doc

    def client(self, cid: str) -> dict[str, Any] | None:
        """One client's current row (None when it is not on the host now)."""
        with self._lock:
            snap = self._snap
            if snap is None or cid not in self._present:
                return None
            h = self._clients.get(cid) or ClientHistory()
            hist = {cid: (dict(h.nmig), h.pages_migrated)}
        return clients_view(snap, hist, only=cid)[0]

    def explain(self, cid: str) -> dict[str, Any] | None:
        """What `homenode explain` needs: current row, decisions, pages moved, settings."""
        current = self.client(cid)
        with self._lock:
            h = self._clients.get(cid)
            if h is None and current is None:
                return None
            h = h or ClientHistory()
            return {
                "client": cid, "policy": self.policy, "current": current,
                "decisions": list(h.decisions),
                "pages": [{"src": s, "dst": d, "pages": n}
                          for (s, d), n in sorted(h.pages_by_route.items())],
                "last_pages_at": h.last_pages_at,
                "settings": self.settings.as_dict() if self.settings else None,
            }

    def topology_view(self) -> dict[str, Any] | None:
        with self._lock:
            return self._topology_view()

    def known_clients(self) -> list[str]:
        with self._lock:
            return list(self._clients)

    def tick_histogram(self) -> tuple[list[tuple[float, int]], int, float]:
        """Cumulative (upper bound, count) buckets, the count and the sum of tick times."""
        with self._lock:
            counts = list(self._tick_counts)
            total = self._tick_sum
        cum, out = 0, []
        for bound, n in zip((*TICK_BUCKETS, math.inf), counts, strict=True):
            cum += n
            out.append((bound, cum))
        return out, cum, total

    def _present_histories(self) -> dict[str, tuple[dict[str, int], int]]:
        return {cid: (dict(h.nmig), h.pages_migrated) for cid, h in self._clients.items()
                if cid in self._present}

    def _topology_view(self) -> dict[str, Any] | None:
        t = self.topology
        if t is None:
            return None
        return {"nodes": [{"index": i, "id": t.node_ids[i], "cpus": list(t.cpus[i]),
                           "cores": float(t.cores[i]),
                           "mem_mib": round(pages_to_mib(int(t.mem_pages[i])), 1)}
                          for i in range(t.n)],
                "distance": t.distance.astype(int).tolist()}


def nodes_view(snap: Snapshot, loads: np.ndarray, used: np.ndarray) -> list[dict[str, Any]]:
    t = snap.topology
    homed = np.bincount(snap.home[snap.home >= 0], minlength=t.n)
    return [{"index": i, "id": t.node_ids[i], "cores": float(t.cores[i]),
             "load": _num(loads[i]), "cpu_used": _num(used[i]),
             "mem_mib": round(pages_to_mib(int(t.mem_pages[i])), 1),
             "free_mib": round(pages_to_mib(int(snap.free_pages[i])), 1),
             "clients": int(homed[i])} for i in range(t.n)]


def clients_view(snap: Snapshot, hist: dict[str, tuple[dict[str, int], int]],
                 only: str | None = None) -> list[dict[str, Any]]:
    """Rows of the status document; the arithmetic is done on whole vectors first."""
    n = len(snap.clients)
    rows = range(n) if only is None else [snap.index_of(only)]
    home = snap.home
    total = snap.pages.sum(axis=1)
    local = np.where(home >= 0, snap.pages[np.arange(n), np.maximum(home, 0)], 0)
    local_l, remote_l = _floats(pages_to_mib(local), 1), _floats(pages_to_mib(total - local), 1)
    by_node = np.round(pages_to_mib(snap.pages), 1).tolist()
    loc, since = _floats(snap.locality(), 4), _floats(snap.home_since, 3)
    demand, received = _floats(snap.demand, 4), _floats(snap.received, 4)
    home_l = home.tolist()
    ids = snap.topology.node_ids
    out = []
    for i in rows:
        c = snap.clients[i]
        nmig, pages = hist.get(c.id, ({}, 0))
        hn = home_l[i]
        out.append({
            "id": c.id, "name": c.name, "managed": c.managed, "vcpus": c.vcpus,
            "mem_mib": round(pages_to_mib(c.mem_pages), 1),
            "home": hn if hn >= 0 else None, "home_id": ids[hn] if hn >= 0 else None,
            "home_since": since[i], "nmig": sum(nmig.values()),
            "nmig_by_reason": dict(sorted(nmig.items())),
            "local_mib": local_l[i], "remote_mib": remote_l[i], "mem_by_node_mib": by_node[i],
            "locality": loc[i], "cpu_demand": demand[i], "cpu_received": received[i],
            "pages_migrated": pages,
        })
    return out


def _floats(a: np.ndarray, digits: int) -> list[float | None]:
    """A vector as JSON-safe rounded floats (None for NaN or infinity)."""
    return [v if math.isfinite(v) else None
            for v in np.round(np.asarray(a, dtype=float), digits).tolist()]


class TimedHost:
    """A host whose ``snapshot()`` marks the start of a tick, so the recorder can time
    snapshot + decide + apply (the exporter's tick duration).  Everything else passes
    through unchanged."""

    def __init__(self, host: Any, recorder: StatusRecorder):
        self.host = host
        self.recorder = recorder

    def snapshot(self) -> Snapshot:
        self.recorder.tick_started()
        return self.host.snapshot()

    def apply(self, actions: list[Action]) -> list[ActionResult]:
        return self.host.apply(actions)

    def next_wakeup(self) -> float | None:
        return self.host.next_wakeup()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.host, name)


def action_row(now: float, a: Action, ok: bool) -> dict[str, Any]:
    kind = "home" if isinstance(a, SetHome) else "pages"
    return {"time": round(now, 3), "client": a.client, "kind": kind, "src": a.src,
            "dst": a.dst, "pages": getattr(a, "pages", 0), "reason": str(a.reason),
            "score": _num(a.score), "ok": bool(ok), "detail": a.detail}


def considered_row(c: Considered) -> dict[str, Any]:
    return {"client": c.client, "src": c.src, "dst": c.dst, "reason": str(c.reason),
            "score": _num(c.score), "verdict": c.verdict,
            **({"detail": c.detail} if c.detail else {})}


def _record(now: float) -> dict[str, Any]:
    return {"time": round(now, 3), "actions": [], "considered": []}


def _num(x: float | None, digits: int = 4) -> float | None:
    """A JSON-safe float: rounded, and None for NaN or infinity."""
    if x is None:
        return None
    x = float(x)
    return round(x, digits) if math.isfinite(x) else None
