"""The ``oracle`` policy (also registered as ``optimal``): a mixed-integer program (HiGHS)
that gives every client the home maximising total progress in the steady state, ignoring
what migration costs.  A good oracle, not a bound on what a run can reach: the true upper
bound is sim/bound.py's relaxation (``throughput_vs_bound``).

Re-solved every ``RESOLVE_PERIOD`` seconds with the demand of the moment (at once when
clients arrive); homes change to the solution's and every remote page is migrated toward
its home as fast as the host allows.  The model is the simulator's (sim/host.py):

* CPU: y[i,n] binary homes; g[i,n] <= W_i y[i,n] received, sum_i g[i,n] <= cores_n,
  with W_i = demand within vCPUs, limits and pool limits.  The best split on a node gives
  min(cores, sum W), as proportional share does.
* memory: f[i,n] <= y[i,n] local share, sum_i S_i f[i,n] <= memory_n.  Progress is
  received x 1/((1 - m) + m x latency); its loss with remote memory is bounded through
  z_i >= g_i - W_i sum_n f[i,n] (the concave envelope of g x remote share, remote pages
  at the nearest distance): p_i <= g_i - c_i z_i, c_i = 1 - 1/((1 - m_i) + m_i lambda).
* communication (affinity groups): partners on one node, s[pair,n] <= y[a,n], y[b,n],
  bound the communication loss the same way: p_i <= g_i - c'_i q_i.
* maximise sum_i p_i + STAY_WEIGHT * sum here[i,n] y[i,n] - BALANCE_WEIGHT * u, where
  u >= each node's load: the last terms only break ties, first toward homes whose memory
  is already there, then toward spreading load.  The bound reported is the solver's dual
  bound with them taken out.

Exact when memory is local and partners share nodes; otherwise every relaxation can only
overestimate, so the objective is an upper bound.  Memory and communication intensity
and the remote latency are not in a snapshot: they come as ``Hints``; ``compare``
builds the policy with ``hints_for(scenario)``.
Solves that hit ``SOLVE_TIME_LIMIT`` are reported with the gap they proved.  Full
description: docs/baselines.md.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import highspy
import numpy as np

from homenode.cpu import pooled_share
from homenode.highs import new_highs
from homenode.model import (
    LOCAL_DISTANCE,
    Considered,
    Decision,
    MigratePages,
    Reason,
    SetHome,
    Snapshot,
)
from homenode.policy import base
from homenode.settings import Settings
from homenode.units import GIB, PAGE_SIZE

SOLVE_TIME_LIMIT = 10.0        # s of wall time per solve (the bound for 8 x 64)
RESOLVE_PERIOD = 2.0           # s between solves, as ESXi's Numa.RebalancePeriod
DEMAND_EPSILON = 0.01          # cores: a smaller change of any client's demand is no news
STAY_WEIGHT = 1e-3             # cores per client kept where its memory is (tie-break 1)
BALANCE_WEIGHT = 1e-4          # cores per unit of the busiest node's load (tie-break 2)
ORIGIN_RESIDENT = 0.9          # a client's initial layout: once this share is touched
MIP_REL_GAP = 1e-6             # the solver stops when proven this close to optimal
# ``remote_latency`` is the latency at one hop, SLIT distance 21 (ACPI: local is 10).
ONE_HOP_DISTANCE = 21
DEFAULT_MEM_INTENSITY = 0.5    # the simulator's default, used without hints
DEFAULT_REMOTE_LATENCY = 1.6   # latency ratio at SLIT 21, the simulator's default


@dataclass(frozen=True)
class Hints:
    """What the simulator knows and a snapshot does not."""

    mem_intensity: Mapping[str, float] = field(default_factory=dict)
    comm_intensity: Mapping[str, float] = field(default_factory=dict)
    remote_latency: float = DEFAULT_REMOTE_LATENCY


@dataclass(frozen=True)
class SolveStats:
    time: float                # simulated time of the solve
    status: str                # "optimal", "time limit", ...
    progress: float            # cores of progress of the solution found
    bound: float               # proven upper bound on progress (cores)
    gap: float                 # relative gap between the two (0 = proven optimal)
    seconds: float             # wall time
    clients: int
    moves: int
    want: float = 0.0          # cores wanted in total (what the bound compares with)

    @property
    def timed_out(self) -> bool:
        return self.status == "time limit"


def latency_ratio(distance: np.ndarray, remote_latency: float) -> np.ndarray:
    """As ``HostSpec.latency_ratio``: linear in SLIT distance, 1.0 locally."""
    return 1.0 + (distance.astype(float) - LOCAL_DISTANCE) * (remote_latency - 1.0) / \
        (ONE_HOP_DISTANCE - LOCAL_DISTANCE)


@dataclass
class Problem:
    """One steady-state assignment problem, in plain arrays (C clients, N nodes)."""

    want: np.ndarray          # (C,) cores: demand within vCPUs, limits and pool limits
    mem: np.ndarray           # (C,) GiB footprint
    loss: np.ndarray          # (C,) share of progress lost with all memory remote
    here: np.ndarray          # (C, N) share of pages already on each node
    allowed: np.ndarray       # (C, N) bool; an unmanaged client: only its node
    cores: np.ndarray         # (N,)
    memory: np.ndarray        # (N,) GiB
    group: np.ndarray | None = None      # (C,) communication group, -1 = none
    comm_loss: np.ndarray | None = None  # (C,) share lost with every partner remote


class _Rows:
    """A sparse constraint matrix built block by block: row/column/value triplets."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.lo: list[np.ndarray] = []
        self.hi: list[np.ndarray] = []
        self.n = 0

    def add(self, k: int, row: np.ndarray, col: np.ndarray, val: np.ndarray,
            lo: float, hi: float | np.ndarray) -> None:
        """``k`` rows ``lo <= sum val * x[col] <= hi``; ``row`` numbers them 0..k-1."""
        self.parts.append((np.asarray(row) + self.n, np.asarray(col), np.asarray(val, float)))
        self.lo.append(np.full(k, lo))
        self.hi.append(np.broadcast_to(np.asarray(hi, float), (k,)).copy())
        self.n += k

    def csr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        row, col, val = (np.concatenate([p[k] for p in self.parts]) for k in range(3))
        order = np.lexsort((col, row))
        row, col, val = row[order], col[order], val[order]
        return np.searchsorted(row, np.arange(self.n)).astype(np.int32), \
            col.astype(np.int32), val


def solve(p: Problem, time_limit: float = SOLVE_TIME_LIMIT) -> tuple[np.ndarray, SolveStats]:
    """Homes (C,) and solve statistics; homes are -1 when no solution was found."""
    c, n = p.allowed.shape
    cn = c * n
    ij = np.arange(cn)
    i_of, n_of = ij // n, ij % n
    ci = np.arange(c)
    pairs = _pairs(p.group if p.group is not None else np.full(c, -1))
    npair = len(pairs) * n
    # Columns: y (binary), g, f (C*N each); z, q (comm), p (C each); u; s (pairs x N).
    y0, g0, f0 = 0, cn, 2 * cn
    z0, q0, p0 = 3 * cn, 3 * cn + c, 3 * cn + 2 * c
    u0, s0 = 3 * cn + 3 * c, 3 * cn + 3 * c + 1
    ncol = s0 + npair
    allowed = p.allowed.ravel().astype(float)
    upper = np.concatenate([allowed, allowed * p.want[i_of], allowed,
                            np.full(3 * c + 1, np.inf), np.ones(npair)])
    cost = np.zeros(ncol)
    cost[y0:y0 + cn] = STAY_WEIGHT * p.here.ravel()
    cost[p0:p0 + c] = 1.0
    cost[u0] = -BALANCE_WEIGHT
    r = _Rows()
    inf = np.inf
    r.add(c, i_of, y0 + ij, np.ones(cn), 1.0, 1.0)                           # one home
    r.add(cn, np.r_[ij, ij], np.r_[g0 + ij, y0 + ij], np.r_[np.ones(cn), -p.want[i_of]],
          -inf, 0.0)                                                         # g <= W y
    r.add(cn, np.r_[ij, ij], np.r_[f0 + ij, y0 + ij], np.r_[np.ones(cn), -np.ones(cn)],
          -inf, 0.0)                                                         # f <= y
    r.add(n, n_of, g0 + ij, np.ones(cn), -inf, p.cores)                      # CPU
    r.add(n, n_of, f0 + ij, p.mem[i_of], -inf, p.memory)                     # memory
    r.add(c, np.r_[ci, i_of, i_of], np.r_[z0 + ci, g0 + ij, f0 + ij],
          np.r_[np.ones(c), -np.ones(cn), p.want[i_of]], 0.0, inf)           # z >= g - W f
    r.add(c, np.r_[ci, i_of, ci], np.r_[p0 + ci, g0 + ij, z0 + ci],
          np.r_[np.ones(c), -np.ones(cn), p.loss], -inf, 0.0)                # p <= g - c z
    if pairs:
        _comm_rows(r, p, pairs, y0, g0, q0, p0, s0)
    live = np.flatnonzero(p.cores > 0)
    on = np.isin(n_of, live)
    k = np.searchsorted(live, n_of[on])
    r.add(live.size, np.r_[k, np.arange(live.size)], np.r_[y0 + ij[on], np.full(live.size, u0)],
          np.r_[p.want[i_of[on]] / p.cores[n_of[on]], -np.ones(live.size)], -inf, 0.0)
    h = new_highs(time_limit=float(time_limit), mip_rel_gap=MIP_REL_GAP)
    h.addVars(ncol, np.zeros(ncol), upper)
    h.changeColsCost(ncol, np.arange(ncol, dtype=np.int32), cost)
    h.changeColsIntegrality(cn, np.arange(cn, dtype=np.int32),
                            np.full(cn, highspy.HighsVarType.kInteger))
    h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    starts, cols, vals = r.csr()
    h.addRows(r.n, np.concatenate(r.lo), np.concatenate(r.hi), vals.size, starts, cols, vals)
    w0 = time.perf_counter()
    h.run()
    seconds = time.perf_counter() - w0
    status, info = h.getModelStatus(), h.getInfo()
    homes = np.full(c, -1, np.int64)
    progress = bound = float("nan")
    if info.primal_solution_status == highspy.kSolutionStatusFeasible:
        x = np.asarray(h.getSolution().col_value)
        homes = np.argmax(x[y0:y0 + cn].reshape(c, n), axis=1)
        progress = float(x[p0:p0 + c].sum())
        # Any placement's progress = objective - stay term + balance term; the stay term
        # is >= 0 and the balance term at most BALANCE_WEIGHT x the worst possible load.
        worst = p.want.sum() / p.cores[live].min() if live.size else 0.0
        bound = float(info.mip_dual_bound) + BALANCE_WEIGHT * worst
    names = {highspy.HighsModelStatus.kOptimal: "optimal",
             highspy.HighsModelStatus.kTimeLimit: "time limit"}
    return homes, SolveStats(0.0, names.get(status, h.modelStatusToString(status)), progress,
                             bound, float(info.mip_gap), seconds, c, 0, float(p.want.sum()))


def _pairs(group: np.ndarray) -> list[tuple[int, int]]:
    out = []
    for g in np.unique(group[group >= 0]):
        members = np.flatnonzero(group == g)
        out.extend((int(a), int(b)) for k, a in enumerate(members) for b in members[k + 1:])
    return out


def _comm_rows(r: _Rows, p: Problem, pairs: list[tuple[int, int]], y0: int, g0: int,
               q0: int, p0: int, s0: int) -> None:
    """Partners on one node talk locally: s[pair,n] <= y[a,n], y[b,n]; a client's
    communication loss q_i >= g_i - W_i (partners with it / partners), p <= g - c' q."""
    c, n = p.allowed.shape
    ab = np.array(pairs)
    k = np.arange(len(pairs) * n)
    pair_of, node_of = k // n, k % n
    for side in (0, 1):
        r.add(k.size, np.r_[k, k], np.r_[s0 + k, y0 + ab[pair_of, side] * n + node_of],
              np.r_[np.ones(k.size), -np.ones(k.size)], -np.inf, 0.0)
    mates = np.bincount(ab.ravel(), minlength=c).astype(float)
    talk = np.flatnonzero((mates > 0) & (p.comm_loss > 0))
    row_of = np.full(c, -1)
    row_of[talk] = np.arange(talk.size)
    t_rows = np.repeat(np.arange(talk.size), n)
    t_g = g0 + (talk[:, None] * n + np.arange(n)).ravel()
    # Each s[pair,n] counts for both partners that talk.
    member = ab[pair_of].T.ravel()
    kk = np.r_[k, k]
    ok = row_of[member] >= 0
    r.add(talk.size, np.r_[np.arange(talk.size), t_rows, row_of[member[ok]]],
          np.r_[q0 + talk, t_g, s0 + kk[ok]],
          np.r_[np.ones(talk.size), -np.ones(t_rows.size),
                p.want[member[ok]] / mates[member[ok]]], 0.0, np.inf)
    r.add(talk.size, np.r_[np.arange(talk.size), np.arange(talk.size), t_rows],
          np.r_[p0 + talk, q0 + talk, t_g],
          np.r_[np.ones(talk.size), p.comm_loss[talk], -np.ones(t_rows.size)], -np.inf, 0.0)


@base.register("oracle")
@base.register("optimal")     # its first name, kept for scripts and docs that use it
class OptimalPolicy:
    name = "optimal"

    def __init__(self, settings: Settings | None = None, hints: Hints | None = None,
                 time_limit: float = SOLVE_TIME_LIMIT):
        self.s = settings or Settings()
        self.hints = hints or Hints()
        self.time_limit = time_limit
        self.stats: list[SolveStats] = []
        self.origin: dict[str, np.ndarray] = {}   # pages as they first lay, per client
        self._origin_done: set[str] = set()
        self.final_home: dict[str, int] = {}
        self._last_solve = -np.inf
        self._last_want: dict[str, float] = {}

    # --- what optimal's placement strictly requires -----------------------------------

    def required_pages(self) -> int:
        """What the final placement strictly required to copy: each client's pages off
        its last home, as they lay once its memory was first (nearly) all touched --
        the initial layout, wherever first touch or a pinned allocation put it."""
        return int(sum(layout.sum() - layout[self.final_home[cid]]
                       for cid, layout in self.origin.items() if cid in self.final_home))

    def _track(self, snap: Snapshot, home: np.ndarray) -> None:
        mem = snap.vectors().mem_pages
        resident = snap.pages.sum(axis=1)
        for i, c in enumerate(snap.clients):
            if home[i] >= 0:
                self.final_home[c.id] = int(home[i])
            settled = resident[i] >= ORIGIN_RESIDENT * mem[i] and resident[i] > 0
            if c.id not in self.origin or (settled and c.id not in self._origin_done):
                self.origin[c.id] = snap.pages[i].copy()
                if settled:
                    self._origin_done.add(c.id)

    # --- the policy --------------------------------------------------------------------

    def decide(self, snap: Snapshot) -> Decision:
        d = Decision()
        if not snap.clients:
            return d
        home = snap.home.copy()
        if self._due(snap):
            self._solve(snap, home, d)
        self._migrate(snap, home, d)
        self._track(snap, home)
        return d

    def _due(self, snap: Snapshot) -> bool:
        if ((snap.home < 0) & snap.managed).any():
            return True
        if snap.time - self._last_solve < RESOLVE_PERIOD - 1e-9:
            return False
        want = self._want(snap)
        ids = [c.id for c in snap.clients]
        if set(ids) != set(self._last_want):
            return True
        return any(abs(w - self._last_want[i]) > DEMAND_EPSILON
                   for i, w in zip(ids, want, strict=True))

    def _want(self, snap: Snapshot) -> np.ndarray:
        vec = snap.vectors()
        cap = vec.cpu_cap
        want = np.minimum(np.maximum(snap.demand, 0.0), cap)
        if snap.pools:      # pool limits hold host-wide, as in the simulator
            want = np.minimum(want, pooled_share(np.inf, want, vec.shares, vec.reservation,
                                                 [c.pool for c in snap.clients], snap.pools))
        # A client that has not run yet shows no demand: count its vCPUs (as placement does).
        return np.where((snap.home < 0) & (want <= 0), cap, want)

    def problem(self, snap: Snapshot) -> Problem:
        topo = snap.topology
        vec = snap.vectors()
        want = self._want(snap)
        resident = snap.pages.sum(axis=1)
        mem = np.maximum(vec.mem_pages, resident) * PAGE_SIZE / GIB
        m = np.array([self.hints.mem_intensity.get(c.id, DEFAULT_MEM_INTENSITY)
                      for c in snap.clients])
        lat = latency_ratio(topo.distance, self.hints.remote_latency)
        remote = lat[~np.eye(topo.n, dtype=bool)]
        lam = float(remote.min()) if remote.size else 1.0
        loss = 1.0 - 1.0 / ((1.0 - m) + m * lam)
        comm = np.array([self.hints.comm_intensity.get(c.id, 0.0) for c in snap.clients])
        here = np.divide(snap.pages, resident[:, None], out=np.zeros(snap.pages.shape),
                         where=resident[:, None] > 0)
        allowed = vec.allowed & vec.managed[:, None]
        fixed = np.flatnonzero(~vec.managed & (snap.home >= 0))
        allowed[fixed, snap.home[fixed]] = True
        memory = topo.mem_pages * PAGE_SIZE / GIB
        if fixed.size:      # unmanaged memory stays where it is
            memory = memory - snap.pages[fixed].sum(axis=0) * PAGE_SIZE / GIB
            mem[fixed] = 0.0
        return Problem(want, mem, loss, here, allowed, topo.cores.astype(float),
                       np.maximum(memory, 0.0), vec.affinity,
                       1.0 - 1.0 / ((1.0 - comm) + comm * lam))

    def _solve(self, snap: Snapshot, home: np.ndarray, d: Decision) -> None:
        self._last_solve = snap.time
        want = self._want(snap)
        self._last_want = {c.id: float(w) for c, w in zip(snap.clients, want, strict=True)}
        homes, st = solve(self.problem(snap), self.time_limit)
        verdict = (f"MIP {st.status} in {st.seconds:.2f} s: progress {st.progress:.3f} "
                   f"cores, bound {st.bound:.3f}, gap {100 * st.gap:.3f} %")
        if homes[0] < 0:       # no solution at all: keep homes, place new ones greedily
            homes = self._greedy(snap, want)
        moves = 0
        for i, c in enumerate(snap.clients):
            dst = int(homes[i])
            if not snap.managed[i] or dst == home[i]:
                continue
            src = int(home[i])
            reason = Reason.INITIAL if src < 0 else Reason.OPTIMAL
            if src >= 0:
                moves += 1
            home[i] = dst
            d.actions.append(SetHome(c.id, src, dst, reason, st.progress, verdict))
            d.considered.append(Considered(c.id, src, dst, reason, st.progress, "taken"))
        self.stats.append(SolveStats(snap.time, st.status, st.progress, st.bound, st.gap,
                                     st.seconds, st.clients, moves, st.want))
        # One record per solve, so that a solve with no move still shows in decisions.jsonl.
        d.considered.append(Considered("(mip)", -1, -1, Reason.OPTIMAL, st.progress, verdict))

    def _greedy(self, snap: Snapshot, want: np.ndarray) -> np.ndarray:
        topo = snap.topology
        homes = snap.home.copy()
        placed = homes >= 0
        used = np.bincount(homes[placed], want[placed], topo.n)
        for i in np.flatnonzero(~placed):
            spare = np.where(snap.vectors().allowed[i], topo.cores - used, -np.inf)
            homes[i] = int(np.argmax(spare))
            used[homes[i]] += want[i]
        return homes

    def _migrate(self, snap: Snapshot, home: np.ndarray, d: Decision) -> None:
        """Every remote page toward its home, as fast as the host allows."""
        for i in np.flatnonzero(snap.managed & (home >= 0)):
            row = snap.pages[i]
            dst = int(home[i])
            for src in np.flatnonzero(row > 0):
                if src != dst:
                    d.actions.append(MigratePages(snap.clients[i].id, int(src), dst,
                                                  int(row[src]), Reason.OPTIMAL))


def hints_for(scenario: object) -> Hints:
    """Hints from a ``sim.scenario.Scenario``: per-client memory intensity, latency."""
    specs = getattr(scenario, "clients", ())
    host = getattr(scenario, "host", None)
    return Hints({s.client.id: float(s.mem_intensity) for s in specs},
                 {s.client.id: float(getattr(s, "comm_intensity", 0.0)) for s in specs},
                 float(getattr(host, "remote_latency", DEFAULT_REMOTE_LATENCY)))
