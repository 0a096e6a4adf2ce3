"""The simulator's true upper bound on progress: a per-tick relaxation no policy can beat.

Each tick, a client makes progress ``received x eff`` (sim/host.py), where ``received``
is CPU given by proportional share on its one home node and ``eff <= 1`` is the slowdown
from remote memory, communication and the overheads a policy is charged.  Relax every
constraint a policy has to live with except that a client runs on one node:

* migration is free and instant, so every page is local (``eff = 1``), and no policy or
  kernel overhead is charged;
* each client may be homed on any node it is allowed on (its ``allowed_nodes``; a pinned
  client only on its pinned node), chosen afresh every tick;
* a node's CPU may be split among its clients in any way, so a node gives
  ``min(cores_n, sum of W_i homed there)`` -- the most proportional share can give.

That is ``bound = max over homes of sum_n min(cores_n, sum_{i homed on n} W_i)``, with
``W_i`` the client's want (its demand within vCPUs, limits and pool limits -- the same
``want`` the host computes).  Any real run gives each client at most ``W_i``, from its one
home, and each node at most ``cores_n`` (less the CPU spent migrating), so its progress
can never exceed this bound in any tick.

It is computed in three steps, cheapest first:

1. each want is capped at the cores of the biggest node the client may use; then, with
   *fractional* homes (a client's CPU from any mix of its nodes), the problem is a
   max flow; by max-flow/min-cut it equals the cheapest cut, a set T of nodes kept on the
   sink side plus every client that may use a node outside T::

       flow = min over T of  sum_{n in T} cores_n + sum_{i: allowed_i not within T} W_i

   (``min(sum W, sum cores)`` with no placement constraints).  It can only be higher than
   the bound;
2. if whole homes reach the flow -- largest client first onto the allowed node with the
   most room left -- the flow is the bound, and step 3 is skipped.  That is every tick
   in which the clients fit or fill every node;
3. otherwise the whole-home problem is solved as a MIP (HiGHS) and its proven dual
   bound is taken.  This is where a busy host's clients are too big to share its cores
   out exactly: three 8-core clients fill a 12-core node and a half, not two.  Wants
   are rounded up to ``WANT_QUANTUM`` first (a higher want can only raise the bound),
   and each distinct rounded want is solved once per run.  An instance above
   ``MIP_MAX_BINARIES`` home choices keeps the flow.

Pure functions, no I/O: a policy may call them.
"""

from __future__ import annotations

import highspy
import numpy as np

from homenode.highs import new_highs

MAX_CUT_NODES = 12      # enumerate cuts up to 2^12 node sets; above, drop constraints
WANT_QUANTUM = 1e-6     # cores: wants are rounded up to this before the MIP and its cache
MIP_MAX_BINARIES = 4096  # client x node home choices; a larger tick keeps the flow
MIP_MAX_NODES = 2000    # branch-and-bound nodes per solve: its dual bound is still a bound
MIP_REL_GAP = 1e-7
MIP_SLACK = 1e-6        # per core (and one): added to the solver's bound, above its tolerance
CACHE_SIZE = 4096       # distinct wants remembered per run (a trace repeats its steps)
_TOL = 1e-9


def cut_masks(allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Precomputed cuts for ``allowed`` ((C, N) bool): (node sets (2^N, N) bool, and
    whether each client escapes each set (2^N, C) bool), or None when no client is
    constrained or there are too many nodes (then the bound drops the constraints,
    which only loosens it)."""
    c, n = allowed.shape
    if c == 0 or allowed.all() or n > MAX_CUT_NODES:
        return None
    sets = ((np.arange(2 ** n)[:, None] >> np.arange(n)[None, :]) & 1).astype(bool)
    # a client escapes T when it may use some node outside T
    escapes = (allowed[None, :, :] & ~sets[:, None, :]).any(axis=2)
    return sets, escapes


def tick_bound(want: np.ndarray, cores: np.ndarray,
               cuts: tuple[np.ndarray, np.ndarray] | None = None) -> float:
    """Most CPU the clients can receive at once (cores): the max flow described above.
    ``want`` per client (cores, already capped), ``cores`` per node, ``cuts`` from
    ``cut_masks`` (None: no placement constraints)."""
    w = np.maximum(want, 0.0)
    total = float(w.sum())
    if cuts is None:
        return min(total, float(np.maximum(cores, 0.0).sum()))
    sets, escapes = cuts
    cost = sets @ np.maximum(cores, 0.0) + escapes @ w
    return float(min(cost.min(), total))


def fits_whole(want: np.ndarray, cores: np.ndarray) -> bool:
    """Whether whole homes surely hold every want, with no check per client: placed one by
    one onto the node with the most room, a client of want w finds at least
    (sum cores - sum want + w) / nodes free, which is >= w when (nodes - 1) x the largest
    want <= the cores left over."""
    return (cores.shape[0] - 1) * float(want.max()) <= float(cores.sum() - want.sum())


def greedy_whole(want: np.ndarray, cores: np.ndarray, allowed: np.ndarray | None) -> float:
    """CPU received with whole homes placed largest first, each onto the allowed node
    with the most room left: a placement some policy could make, so a lower value of
    the bound, and equal to it whenever it reaches the flow."""
    load = np.zeros(cores.shape[0])
    for i in np.argsort(-want, kind="stable"):
        room = cores - load
        if allowed is not None:
            room = np.where(allowed[i], room, -np.inf)
        load[int(np.argmax(room))] += want[i]
    return float(np.minimum(load, cores).sum())


def mip_whole(want: np.ndarray, cores: np.ndarray, allowed: np.ndarray | None) -> float:
    """The proven upper bound of ``max over homes of sum_n min(cores_n, load_n)`` (the
    MIP's dual bound; the optimum when the solve finishes).  y[i,n] in {0,1} is client
    i's home, r_n <= cores_n and r_n <= sum_i W_i y[i,n] the CPU node n gives."""
    c, n = want.shape[0], cores.shape[0]
    ok = np.ones((c, n), bool) if allowed is None else allowed
    ci, ni = np.nonzero(ok)
    k = ci.size
    # presolve off: HiGHS 1.16's presolve proved a wrong optimum (half the true one) on a
    # 2-client, 2-node instance whose want exceeded a node's cores by 5e-7
    h = new_highs(mip_rel_gap=MIP_REL_GAP, mip_max_nodes=MIP_MAX_NODES, presolve="off")
    h.addVars(k + n, np.zeros(k + n), np.r_[np.ones(k), cores])
    h.changeColsCost(n, np.arange(k, k + n, dtype=np.int32), np.ones(n))
    h.changeColsIntegrality(k, np.arange(k, dtype=np.int32),
                            np.full(k, highspy.HighsVarType.kInteger))
    h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    # one home each: sum_n y[i,n] = 1 (rows ordered by client, as np.nonzero gives them)
    starts = np.searchsorted(ci, np.arange(c)).astype(np.int32)
    h.addRows(c, np.ones(c), np.ones(c), k, starts, np.arange(k, dtype=np.int32),
              np.ones(k))
    # r_n - sum_i W_i y[i,n] <= 0
    order = np.argsort(ni, kind="stable")
    cols = np.concatenate([np.r_[k + j, order[ni[order] == j]] for j in range(n)])
    vals = np.concatenate([np.r_[1.0, -want[ci[order[ni[order] == j]]]] for j in range(n)])
    counts = np.bincount(ni, minlength=n) + 1
    starts = np.r_[0, np.cumsum(counts)[:-1]].astype(np.int32)
    h.addRows(n, np.full(n, -np.inf), np.zeros(n), cols.size, starts,
              cols.astype(np.int32), vals)
    h.run()
    info = h.getInfo()
    bound = float(info.mip_dual_bound)
    if not np.isfinite(bound):          # no proof at all: the flow stands
        return np.inf
    # the solver proves its bound within its feasibility tolerance: stay above it
    return bound + MIP_SLACK * (1.0 + float(cores.sum()))


class WholeHomeBound:
    """The bound of one host, tick after tick: its nodes' cores and the clients' allowed
    nodes are fixed, the wants change; each distinct rounded want is solved once."""

    def __init__(self, cores: np.ndarray, allowed: np.ndarray):
        self.cores = np.maximum(np.asarray(cores, float), 0.0)
        self.allowed = None if allowed.all() else allowed.copy()
        self.cuts = cut_masks(allowed)
        # whole homes: a client gets at most the cores of the biggest node it may use
        self.widest = np.where(allowed, self.cores[None, :], 0.0).max(axis=1, initial=0.0)
        self._cache: dict[bytes, float] = {}
        self.solves = 0

    def __call__(self, want: np.ndarray) -> float:
        w = np.minimum(np.maximum(want, 0.0), self.widest)
        flow = tick_bound(w, self.cores, self.cuts)
        live = np.flatnonzero(w > _TOL)
        if live.size < 2:
            return flow
        if self.allowed is None and fits_whole(w, self.cores):
            return flow
        w = np.minimum(np.ceil(w[live] / WANT_QUANTUM) * WANT_QUANTUM, self.widest[live])
        key = live.tobytes() + w.tobytes()
        got = self._cache.get(key)
        if got is None:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            got = self._cache[key] = self._whole(w, live, flow)
        return min(flow, got)

    def _whole(self, w: np.ndarray, live: np.ndarray, flow: float) -> float:
        """The whole-home bound of the live clients' rounded wants ``w``, or inf where the
        flow stands (whole homes reach it, or the MIP would be too big)."""
        allowed = None if self.allowed is None else self.allowed[live]
        placed = greedy_whole(w, self.cores, allowed)
        if placed >= flow - _TOL or live.size * self.cores.shape[0] > MIP_MAX_BINARIES:
            return np.inf
        self.solves += 1
        got = mip_whole(w, self.cores, allowed)
        # a bound below a placement just made is the solver's error: keep the flow
        return got if got >= placed - _TOL else np.inf
