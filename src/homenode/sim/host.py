"""The simulated NUMA host: CPU sharing, first-touch memory, remote-access cost, and
bandwidth-limited page migration, stepped in small ticks.

It is a host like any other: ``snapshot()`` and ``apply(actions)``.  Time moves only
through ``advance_to(t)``, which the control loop calls through ``SimClock``.  All client
slots of a scenario are allocated up front and vectors cover every slot, so one tick is
a fixed handful of numpy operations whatever the churn.  The RNG is seeded from the
scenario, and nothing depends on wall time: the same scenario and seed give the same
run, byte for byte.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from homenode.costmodel import memory_efficiency
from homenode.cpu import pooled_share, share_cpu
from homenode.model import (
    Action,
    ActionResult,
    MigratePages,
    Reason,
    SetHome,
    Snapshot,
    Work,
    client_arrays,
    group_index,
)
from homenode.sim.bound import WholeHomeBound
from homenode.sim.costs import copy_cpu, daemon_cpu, task_move_cpu, work_cpu
from homenode.sim.demand import DemandTable
from homenode.sim.profiles import link_flows, link_slowdown
from homenode.sim.scenario import Scenario
from homenode.units import PAGE_SIZE

_START, _STOP, _DEMAND, _DEMAND_ON_NODE = 0, 1, 2, 3


class SimHost:
    """``policy`` names the policy that will run, for the daemon it stands for
    (sim/costs.py ``DAEMON``); None charges no daemon."""

    def __init__(self, scenario: Scenario, seed: int | None = None, policy: str | None = None):
        self.sc = scenario
        self.seed = scenario.seed if seed is None else seed
        rng = np.random.default_rng(self.seed)
        spec = scenario.host
        self.topo = spec.topology
        self.tick = spec.tick
        self.latency = spec.latency_ratio()
        mem = spec.memory
        # with a profile, remote links saturate (sim/profiles.py)
        self.link_cap = mem.link_capacity(self.topo.distance) if mem.profile else None
        self.core_traffic = mem.core_traffic
        # nodes ordered by distance from each node: where first touch spills to.
        self.nearest = np.argsort(self.topo.distance, axis=1, kind="stable")
        self.bw_pages = spec.migration_bandwidth / PAGE_SIZE
        self.mig_cpu_per_page = copy_cpu(1, spec.migration_cpu_per_gib)
        self.costs = spec.costs
        self.daemon_rate = daemon_cpu(policy, 1.0, self.costs) if policy else 0.0

        specs = scenario.clients
        n, nn = len(specs), self.topo.n
        self.specs = specs
        self.clients = tuple(s.client for s in specs)
        self.slot = {c.id: i for i, c in enumerate(self.clients)}
        self.cap = np.array([c.cpu_cap for c in self.clients], float)
        self.shares = np.array([c.shares for c in self.clients], float)
        self.res = np.array([c.reservation for c in self.clients], float)
        self.intensity = np.array([s.mem_intensity for s in specs], float)
        self.target = np.array([c.mem_pages for c in self.clients], np.int64)
        self.touch = np.array([s.touch_rate / PAGE_SIZE for s in specs], float)
        self.pinned = np.array([min(c.cpu_affinity or c.mem_affinity or {-1})
                                for c in self.clients], np.int64)
        self.start_home = np.array([-1 if s.start_home is None else s.start_home
                                    for s in specs], np.int64)
        self.memory_on = [s.memory_on for s in specs]
        self.comm = np.array([s.comm_intensity for s in specs], float)
        self.group = group_index([c.affinity_group for c in self.clients])
        self.pools = scenario.pools
        self.pool_of = [c.pool for c in self.clients]
        allowed = client_arrays(self.clients, nn).allowed.copy()
        for i in np.flatnonzero(self.pinned >= 0):
            allowed[i] = np.arange(nn) == self.pinned[i]
        self.bound_of = WholeHomeBound(self.topo.cores, allowed)

        self.demand_table = DemandTable(n, rng)
        for i, s in enumerate(specs):
            self.demand_table.set(i, s.curve)

        self.now = 0.0
        self.active = np.zeros(n, bool)
        self.home = np.full(n, -1, np.int64)
        self.home_since = np.zeros(n)
        self.pages = np.zeros((n, nn), np.int64)
        self.demand = np.zeros(n)
        self.received = np.zeros(n)
        self.progress = np.zeros(n)        # cumulative useful work, core-seconds
        self.ideal = np.zeros(n)           # cumulative work with all memory local
        self.bound = 0.0                   # cumulative true upper bound (sim/bound.py)
        self.migrated = np.zeros(n, np.int64)
        self.pages_migrated = 0
        # pending page moves: slot, src, dst, pages left (replaced by each apply)
        self.mig: dict[tuple[int, int, int], int] = {}
        # moves whose copy runs in the client's own context (the kernel's fault path)
        self.mig_in_task: set[tuple[int, int, int]] = set()
        self.debt = np.zeros(n)            # core-seconds each client owes to overheads
        self.touched = np.zeros(n)         # pages touched since their last hinting fault
        self.armed = np.zeros(n)           # PROT_NONE PTEs not yet faulted (not touched)
        self.daemon_debt = 0.0             # core-seconds the policy's daemon owes
        self.overhead_cpu: dict[str, float] = {}     # core-seconds charged, by kind
        self.work_done: dict[str, float] = {}        # units of work, by kind

        self._events: list[tuple[float, int, int, int, object]] = []
        seq = 0
        for i, s in enumerate(specs):
            heapq.heappush(self._events, (s.start, seq, _START, i, None))
            seq += 1
            if s.stop < math.inf:
                heapq.heappush(self._events, (s.stop, seq, _STOP, i, None))
                seq += 1
        for e in scenario.events:
            if e.on_node is not None:
                heapq.heappush(self._events, (e.at, seq, _DEMAND_ON_NODE, e.on_node, e.curve))
                seq += 1
            for cid in e.clients:
                heapq.heappush(self._events, (e.at, seq, _DEMAND, self.slot[cid], e.curve))
                seq += 1
        self._snap_key: tuple | None = None
        self._snap_clients: tuple = ()
        self._snap_idx = np.zeros(0, np.int64)
        self._fire_events()

    # --- the host interface -------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        idx = np.flatnonzero(self.active)
        key = tuple(idx.tolist())
        if key != self._snap_key:
            self._snap_key = key
            self._snap_idx = idx
            self._snap_clients = tuple(self.clients[i] for i in idx)
        used = self.pages.sum(axis=0)
        return Snapshot(self.now, self.topo, self._snap_clients, self.home[idx].copy(),
                        self.home_since[idx].copy(), self.demand[idx].copy(),
                        self.received[idx].copy(), self.pages[idx].copy(),
                        self.topo.mem_pages - used, self.pools)

    def apply(self, actions: list[Action]) -> list[ActionResult]:
        """Apply actions in order.  MigratePages for a client replaces the page moves
        still pending for it (a policy grants a budget per decision); a home change
        abandons the moves in flight toward the old home.  A grant drains over later
        ticks, so each result's ``moved`` stays None."""
        out = []
        fresh: dict[tuple[int, int, int], int] = {}
        in_task: set[tuple[int, int, int]] = set()
        for a in actions:
            i = self.slot.get(a.client)
            if i is None or not self.active[i]:
                out.append(ActionResult(a, False, "no such client"))
                continue
            if isinstance(a, SetHome):
                if not 0 <= a.dst < self.topo.n:
                    out.append(ActionResult(a, False, f"no node {a.dst}"))
                    continue
                if self.home[i] != a.dst:
                    if self.home[i] >= 0:
                        self._charge(i, "task_move", 1, task_move_cpu(self.costs))
                    self.home[i] = a.dst
                    self.home_since[i] = self.now
                    self._drop_moves(i)
                    fresh = {k: v for k, v in fresh.items() if k[0] != i}
                out.append(ActionResult(a, True))
            elif isinstance(a, MigratePages):
                if not (0 <= a.src < self.topo.n and 0 <= a.dst < self.topo.n):
                    out.append(ActionResult(a, False, "no such node"))
                    continue
                key = (i, a.src, a.dst)
                fresh[key] = fresh.get(key, 0) + max(int(a.pages), 0)
                if a.reason is Reason.AUTONUMA:
                    in_task.add(key)
                out.append(ActionResult(a, True))
        for i in {k[0] for k in fresh}:
            self._drop_moves(i)
        self.mig.update(fresh)
        self.mig_in_task |= in_task & fresh.keys()
        return out

    def account(self, work: list[Work]) -> None:
        """Price the work a decision reported (sim/costs.py): a client's is taken from
        its own CPU, the daemon's from the host's."""
        for w in work:
            i = self.slot.get(w.client, -1) if w.client else -1
            if w.client and (i < 0 or not self.active[i]):
                continue
            count = w.count
            if w.kind == "hint_fault" and i >= 0:
                # a PROT_NONE page faults once the client touches it: now, or later
                self.armed[i] += count
                continue
            self._charge(i, w.kind, count, work_cpu(w.kind, count, self.costs))
        self._fault_armed()

    def _fault_armed(self) -> None:
        """Armed (PROT_NONE) pages the client has touched since fault, one each."""
        due = np.minimum(self.armed, self.touched)
        for i in np.flatnonzero(due > 0):
            self.armed[i] -= due[i]
            self.touched[i] -= due[i]
            self._charge(int(i), "hint_fault", float(due[i]),
                         work_cpu("hint_fault", float(due[i]), self.costs))

    def _charge(self, slot: int, kind: str, count: float, cpu: float) -> None:
        if slot >= 0:
            self.debt[slot] += cpu
        else:
            self.daemon_debt += cpu
        self.overhead_cpu[kind] = self.overhead_cpu.get(kind, 0.0) + cpu
        self.work_done[kind] = self.work_done.get(kind, 0.0) + count

    def _drop_moves(self, slot: int) -> None:
        self.mig = {k: v for k, v in self.mig.items() if k[0] != slot}
        self.mig_in_task = {k for k in self.mig_in_task if k[0] != slot}

    # --- time -------------------------------------------------------------------------

    def next_wakeup(self) -> float | None:
        """When the workload next changes (so placement can happen at once)."""
        return self._events[0][0] if self._events else None

    def advance_to(self, t: float) -> None:
        while self.now < t - 1e-9:
            dt = min(self.tick, t - self.now)
            self._step(dt)
            self.now = round(self.now + dt, 9)
            self._fire_events()

    def _fire_events(self) -> None:
        while self._events and self._events[0][0] <= self.now + 1e-9:
            _, _, kind, i, payload = heapq.heappop(self._events)
            if kind == _START:
                self.active[i] = True
                self.home[i] = self.pinned[i] if self.pinned[i] >= 0 else self.start_home[i]
                # a home it had before homenode saw it was not a move: no residence wait
                self.home_since[i] = -math.inf if self.start_home[i] >= 0 else self.now
                # a starting VM's demand is known at once (so placement can size it)
                self.demand[i] = self.demand_table.value(self.now, 0.0)[i]
                if self.memory_on[i] is not None:
                    # memory it already had (a VM that ran there before homenode saw it)
                    node = self.memory_on[i]
                    free = self.topo.mem_pages[node] - self.pages[:, node].sum()
                    self.pages[i, node] = min(self.target[i], max(int(free), 0))
            elif kind == _STOP:
                self.active[i] = False
                self.home[i] = -1
                self.pages[i] = 0
                self.demand[i] = self.received[i] = 0.0
                self.debt[i] = 0.0
                self.armed[i] = self.touched[i] = 0.0
                self._drop_moves(i)
            elif kind == _DEMAND:
                self.demand_table.set(i, payload)
            else:   # i is a node: every client homed there changes
                for slot in np.flatnonzero(self.active & (self.home == i)):
                    self.demand_table.set(int(slot), payload)

    # --- one tick of the model ----------------------------------------------------------

    def _step(self, dt: float) -> None:
        live = self.active & (self.home >= 0)
        demand = np.where(self.active, self.demand_table.value(self.now, dt), 0.0)
        want = np.minimum(demand, self.cap)
        if self.pools:
            # pool limits hold host-wide; within them CPU is shared per node
            want = np.minimum(want, pooled_share(np.inf, want, self.shares, self.res,
                                                 self.pool_of, self.pools))
        mig_cpu = self._migrate(dt) + self._daemon_cpu(dt)
        capacity = np.maximum(self.topo.cores - mig_cpu / dt, 0.0)
        group = np.where(live, self.home, -1)
        received = share_cpu(capacity, group, want, self.shares, self.res)
        self._first_touch(dt, live)

        total = self.pages.sum(axis=1)
        latency = self.latency
        if self.link_cap is not None:
            traffic = received * self.intensity * self.core_traffic
            flow = link_flows(np.where(live, self.home, -1), traffic, self.pages, self.topo.n)
            latency = latency * link_slowdown(flow, self.link_cap)
        lat_rows = latency[np.maximum(self.home, 0)]
        lat = np.where(total > 0, (self.pages * lat_rows).sum(axis=1) / np.maximum(total, 1),
                       1.0)
        eff = memory_efficiency(self.intensity, lat)
        if self.group.max(initial=-1) >= 0:
            eff = eff / ((1.0 - self.comm) + self.comm * self._comm_latency(live))
        # each running client touches pages at its touch rate (one CPU's worth), each
        # page at most once between two faults on it
        self.touched = np.minimum(self.touched + self.touch * np.minimum(received, 1.0) * dt,
                                  self.pages.sum(axis=1))
        if self.armed.any():
            self._fault_armed()
        # overheads charged to a client come out of its own CPU time first
        paid = np.minimum(self.debt, received * dt)
        self.debt -= paid
        self.progress += (received * dt - paid) * eff
        self.ideal += want * dt
        self.bound += self.bound_of(want) * dt
        self.demand, self.received = demand, received

    def _daemon_cpu(self, dt: float) -> np.ndarray:
        """The policy's daemon: its CPU this tick, spread over the nodes by their cores."""
        cpu = self.daemon_rate * dt + self.daemon_debt
        if self.daemon_rate > 0:
            kind = "daemon"
            self.overhead_cpu[kind] = self.overhead_cpu.get(kind, 0.0) + self.daemon_rate * dt
        self.daemon_debt = 0.0
        cores = self.topo.cores
        return cpu * cores / max(float(cores.sum()), 1e-9)

    def _comm_latency(self, live: np.ndarray) -> np.ndarray:
        """Mean latency ratio from each client to the running members of its group."""
        nn = self.topo.n
        ok = live & (self.group >= 0)
        g = int(self.group.max()) + 1
        counts = np.bincount(self.group[ok] * nn + self.home[ok], minlength=g * nn)
        counts = counts.reshape(g, nn).astype(float)
        out = np.ones(self.home.size)
        idx = np.flatnonzero(ok)
        if idx.size:
            rows = counts[self.group[idx]]
            rows[np.arange(idx.size), self.home[idx]] -= 1       # not itself
            mates = rows.sum(axis=1)
            lat = (rows * self.latency[self.home[idx]]).sum(axis=1)
            out[idx] = np.where(mates > 0, lat / np.maximum(mates, 1), 1.0)
        return out

    def _first_touch(self, dt: float, live: np.ndarray) -> None:
        """Growing clients touch new pages on their home node, spilling to the nearest."""
        resident = self.pages.sum(axis=1)
        grow = np.flatnonzero(live & (resident < self.target))
        if grow.size == 0:
            return
        free = self.topo.mem_pages - self.pages.sum(axis=0)
        for i in grow:
            need = int(min(self.target[i] - resident[i], math.ceil(self.touch[i] * dt)))
            for node in self.nearest[self.home[i]]:
                take = min(need, int(free[node]))
                if take > 0:
                    self.pages[i, node] += take
                    free[node] -= take
                    need -= take
                if need <= 0:
                    break

    def _migrate(self, dt: float) -> np.ndarray:
        """Carry out pending page moves within each node's bandwidth; CPU spent per node."""
        nn = self.topo.n
        cpu = np.zeros(nn)
        if not self.mig:
            return cpu
        keys = list(self.mig)
        slots = np.array([k[0] for k in keys])
        src = np.array([k[1] for k in keys])
        dst = np.array([k[2] for k in keys])
        req = np.minimum(np.array([self.mig[k] for k in keys], float), self.pages[slots, src])
        limit = self.bw_pages * dt
        out_n = np.bincount(src, req, nn)
        in_n = np.bincount(dst, req, nn)
        scale = np.minimum(1.0, np.minimum(limit / np.maximum(out_n[src], 1e-9),
                                           limit / np.maximum(in_n[dst], 1e-9)))
        move = np.floor(req * scale).astype(np.int64)
        free = self.topo.mem_pages - self.pages.sum(axis=0)
        for k, (i, s, d) in enumerate(keys):
            # moves of one client from one node to several others share its pages there
            n = int(min(move[k], max(free[d], 0), self.pages[i, s]))
            if n > 0:
                self.pages[i, s] -= n
                self.pages[i, d] += n
                free[d] -= n
                free[s] += n
                self.migrated[i] += n
                self.pages_migrated += n
                if (i, s, d) in self.mig_in_task:
                    self._charge(i, "copy_in_task", n, n * self.mig_cpu_per_page)
                else:
                    cpu[d] += n * self.mig_cpu_per_page
            left = self.mig[(i, s, d)] - n
            if left > 0 and self.pages[i, s] > 0:
                self.mig[(i, s, d)] = left
            else:
                del self.mig[(i, s, d)]
                self.mig_in_task.discard((i, s, d))
        return cpu

    # --- what only a simulator can know -------------------------------------------------

    def stats(self) -> dict[str, np.ndarray]:
        """Per-client cumulative progress and ideal for the clients of the last snapshot."""
        idx = self._snap_idx
        return {"progress": self.progress[idx].copy(), "ideal": self.ideal[idx].copy(),
                "migrated": self.migrated[idx].copy()}

    def overhead(self) -> dict[str, dict[str, float]]:
        """What the policy's work cost: core-seconds and units of work, by kind."""
        return {"cpu_s": {k: round(v, 6) for k, v in sorted(self.overhead_cpu.items())},
                "work": {k: round(v, 3) for k, v in sorted(self.work_done.items())}}

    def totals(self) -> dict[str, float]:
        return {"progress": float(self.progress.sum()), "ideal": float(self.ideal.sum()),
                "bound": self.bound, "pages_migrated": float(self.pages_migrated)}


class SimClock:
    """The simulator's clock: sleeping advances the simulated host."""

    def __init__(self, host: SimHost):
        self.host = host

    def now(self) -> float:
        return self.host.now

    def sleep_until(self, t: float) -> None:
        self.host.advance_to(t)
