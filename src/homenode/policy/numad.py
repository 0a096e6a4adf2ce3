"""The ``numad`` baseline: numad 0.5 (release 20150602), as Red Hat and Debian ship it.

Source: ../shared/reference/linux-numa-interfaces.md section 1 (numad.c read there), the
man page numad(8).  Units follow numad's own so the formulas can be checked line by line
against numad.c: CPU in hundredths of a CPU, memory in MB.

* **Start-up** (libvirt ``placement='auto'``): a new VM asks ``numad -w vcpus:MB`` for a
  node and is bound there.  The advice comes from the free resources *right now*, with
  nothing reserved for VMs advised a moment earlier -- several VMs started together can
  all be sent to the same node (the "-w race").  numad then finds the process already
  bound and treats it as "bound 30 minutes ago".
* **Cycle** every ``MIN_INTERVAL`` s after a move, ``MAX_INTERVAL`` s otherwise (half of
  ``MIN_INTERVAL`` on the first pass and whenever its process table grows):
  sample CPU per process (its CPU use is the peak of the last ``CPU_SAMPLES`` samples),
  keep candidates with more than ``CPU_THRESHOLD`` CPU and ``MEMORY_THRESHOLD_MB`` RSS,
  order them (never-bound first, then by magnitude = CPU x MB with 20 % bins ordered by
  oldest bind), and for each one pick nodes with the magnitude score
  ``(need_mem*10 + excess_mem*4) * (need_cpu*6 + excess_cpu)`` summed over the nodes it
  needs, each divided by its SLIT distance squared.  Requests are inflated to a
  ``TARGET_UTILIZATION`` (85 %) target.  A process bound less than
  ``REEVALUATION_DELAY`` (300 s) ago is skipped unless it sits on the busiest node and
  moving it would narrow the spread of free CPU and free memory.  A process already on
  its target with at most ``100 - TARGET_MEMLOCALITY`` % of its memory elsewhere is left
  alone (and its bind time refreshed).  The first process that needs a change is bound:
  its vCPUs move, and **all** its memory outside the target moves at once (one
  ``migrate_pages`` per source node) -- at most one process per cycle.

Differences from the real daemon, forced by the model's granularity: a client has one
home, so a multi-node target becomes "home = the best node, memory outside the target
moves to the target node holding least of it"; CPU capacity is physical cores (the
simulator has no hyper-thread capacity, so ``-t`` does not apply); clients with manual
affinity are left alone (as with ``numad -x``); migration is asynchronous in the
simulator, bandwidth-limited, rather than blocking the daemon.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from homenode.model import Considered, Decision, MigratePages, Reason, SetHome, Snapshot, Work
from homenode.policy.base import register
from homenode.settings import Settings
from homenode.units import MIB, PAGE_SIZE

MIN_INTERVAL = 5.0             # s: numad -i min; the next cycle after a move
MAX_INTERVAL = 15.0            # s: numad -i max; the next cycle when nothing moved
CPU_THRESHOLD = 50.0           # hundredths of a CPU a candidate must use (numad.c)
MEMORY_THRESHOLD_MB = 300.0    # MB of RSS a candidate must have (numad.c)
TARGET_UTILIZATION = 85.0      # %: numad -u; requests are inflated by 100/85
TARGET_MEMLOCALITY = 90.0      # %: numad -m; at most 10 % remote counts as "in place"
REEVALUATION_DELAY = 300.0     # s: MIN_DELAY_FOR_REEVALUATION, the per-process cool-down
PREBOUND_AGE = 1800.0          # s: a process found already bound counts as bound this long
CPU_SAMPLES = 8                # CPU use = peak of this many samples (numad's ring buffer)
MBS_MARGIN = 100.0             # MB kept free on each node a multi-node request consumes
MAG_BIN = 0.2                  # magnitudes within 20 % are ordered by oldest bind
HASH_TABLE_START = 16          # numad's process table: starts at 16 entries, doubles when
HASH_TABLE_FILL = 7 / 4        # entries x 7/4 exceed its size; a scan admits size/3 new ones
MEM_BIAS_UNBOUND = 17 / 16     # own memory added back to a node's free MB: light bias
MEM_BIAS_BOUND = 5 / 4         # ... and heavy bias once the process is bound
EXPLAIN_KEEP = 24              # alternatives kept per cycle for `explain`


def magnitude(mbs: float, cpus: float, mbs_free: np.ndarray,
              cpus_free: np.ndarray) -> np.ndarray:
    """numad's combined_value_of_weighted_resources, per node."""
    need_mem = np.minimum(mbs_free, mbs)
    excess_mem = np.maximum(mbs_free - mbs, 0.0)
    need_cpu = np.minimum(cpus_free, cpus)
    excess_cpu = np.maximum(cpus_free - cpus, 0.0)
    return (need_mem * 10 + excess_mem * 4) * (need_cpu * 6 + excess_cpu)


@dataclass
class Proc:
    """What numad remembers about one process."""

    samples: deque = field(default_factory=lambda: deque(maxlen=CPU_SAMPLES))
    bind_time: float | None = None    # None: never bound
    nodes: frozenset[int] = frozenset()

    @property
    def cpus_used(self) -> float:
        return max(self.samples) if self.samples else 0.0


@dataclass
class Nodes:
    """numad's node table for one cycle: totals and free resources."""

    cpus_total: np.ndarray       # hundredths
    cpus_free: np.ndarray
    mbs_total: np.ndarray        # MB
    mbs_free: np.ndarray
    distance: np.ndarray

    @classmethod
    def of(cls, snap: Snapshot) -> Nodes:
        topo = snap.topology
        placed = snap.home >= 0
        used = np.bincount(snap.home[placed], snap.received[placed], topo.n)
        cpus_total = 100.0 * topo.cores
        return cls(cpus_total, np.maximum(cpus_total - 100.0 * used, 0.0),
                   topo.mem_pages * PAGE_SIZE / MIB, snap.free_pages * PAGE_SIZE / MIB,
                   topo.distance.astype(float))


@dataclass
class Pick:
    nodes: list[int]              # target node list, best node first
    score: float                  # totmag of the best start node
    nonlocal_pct: float


def pick_nodes(nd: Nodes, cpus: float, mbs: float, assume_enough: bool,
               proc: Proc | None = None, proc_mbs: np.ndarray | None = None,
               used: float = 0.0) -> Pick:
    """numad's pick_numa_nodes: ``proc`` None is pre-placement advice (``-w``)."""
    n = nd.cpus_free.size
    cpus_free = nd.cpus_free.copy()
    mbs_free = nd.mbs_free.copy()
    cpu_flex = 0.0
    if proc is not None and proc_mbs is not None:
        rss = max(float(proc_mbs.sum()), 1.0)
        if len(proc.nodes) >= n:       # not bound to a subset: light bias
            mbs_free += proc_mbs * MEM_BIAS_UNBOUND
            cpus_free += used * proc_mbs / rss
        else:
            mbs_free += proc_mbs * MEM_BIAS_BOUND
            mine = list(proc.nodes)
            cpus_free[mine] = (used + nd.cpus_free[mine].sum()) / len(mine)
        if cpus > cpus_free.sum():
            assume_enough = True       # oversubscribed: place by memory
        cpus_free = np.minimum(cpus_free, nd.cpus_total)
        mbs_free = np.minimum(mbs_free, nd.mbs_total)
        if TARGET_UTILIZATION < 100:
            cpu_flex = (100 - TARGET_UTILIZATION) * nd.cpus_total[0] / 200
    cpus_free = np.maximum(cpus_free, 1.0)
    mag = magnitude(mbs, cpus, mbs_free, cpus_free)
    # numad assumes every node is the size of node 0.
    need = max(math.ceil(mbs / max(nd.mbs_total[0], 1.0)),
               math.ceil((cpus - cpu_flex) / max(nd.cpus_total[0], 1.0)))
    need = min(max(need, 0), n)
    totmag = np.zeros(n)
    for ix in range(n):
        order = _by_distance(nd.distance[:, ix], mag)
        d = nd.distance[order[:need], ix]
        totmag[ix] = float((mag[order[:need]] / (d * d)).sum())
    best = int(np.argmax(totmag))
    order = _by_distance(nd.distance[:, best], mag)
    target: list[int] = []
    for k in order:
        if not (need > 0 or mbs > 0 or (cpus > cpu_flex and not assume_enough)):
            break
        target.append(int(k))
        need -= 1
        if len(target) == n:
            break
        if mbs_free[k] >= mbs + MBS_MARGIN:
            mbs = 0.0
        else:
            mbs -= mbs_free[k] - MBS_MARGIN
        cpus = max(cpus - cpus_free[k], 0.0)
    target = target or [best]
    nonlocal_pct = 0.0
    if proc_mbs is not None and proc_mbs.sum() > 0:
        outside = np.ones(n, bool)
        outside[target] = False
        nonlocal_pct = 100.0 * float(proc_mbs[outside].sum()) / float(proc_mbs.sum())
    return Pick(target, float(totmag[best]), nonlocal_pct)


def _by_distance(dist_from: np.ndarray, mag: np.ndarray) -> np.ndarray:
    """Nodes by distance, ties broken by larger magnitude (numad's selection sort)."""
    return np.lexsort((-mag, dist_from))


def _numad_order(a: tuple[float, float], b: tuple[float, float]) -> int:
    """Bound candidates: larger magnitude first, unless within 20 %: older bind first."""
    (mag_a, bind_a), (mag_b, bind_b) = a, b
    lo, diff = min(mag_a, mag_b), abs(mag_a - mag_b)
    if diff > 0 and lo < diff / MAG_BIN:     # numad: min_mag / diff_mag < 5
        return -1 if mag_a > mag_b else 1
    return -1 if bind_a < bind_b else (1 if bind_a > bind_b else 0)


@register("numad")
class NumadPolicy:
    name = "numad"

    def __init__(self, settings: Settings | None = None):
        self.s = settings or Settings()
        self.procs: dict[str, Proc] = {}
        self.next_cycle: float | None = None
        self.table_size = HASH_TABLE_START

    def decide(self, snap: Snapshot) -> Decision:
        d = Decision()
        if not snap.clients:
            return d
        home = snap.home.copy()
        self._advise_new(snap, home, d)
        if self.next_cycle is None:
            self.next_cycle = snap.time + MIN_INTERVAL / 2
        if snap.time >= self.next_cycle - 1e-9:
            self.next_cycle = snap.time + self._cycle(snap, home, d)
        return d

    # --- start-up advice (numad -w, through libvirt placement='auto') ------------------

    def _advise_new(self, snap: Snapshot, home: np.ndarray, d: Decision) -> None:
        new = np.flatnonzero((home < 0) & snap.managed)
        if new.size == 0:
            return
        nd = Nodes.of(snap)        # read once: nothing is reserved between requests
        allowed = snap.vectors().allowed
        for i in new:
            c = snap.clients[i]
            pick = pick_nodes(nd, 100.0 * c.vcpus, c.mem_bytes / MIB, False)
            dst = pick.nodes[0]
            if not allowed[i, dst]:
                dst = int(np.flatnonzero(allowed[i])[0])
            home[i] = dst
            d.actions.append(SetHome(c.id, -1, dst, Reason.INITIAL, pick.score,
                                     f"numad -w {c.vcpus}:{c.mem_bytes // MIB} -> nodes "
                                     f"{pick.nodes}"))
            d.considered.append(Considered(c.id, -1, dst, Reason.INITIAL, pick.score, "taken"))

    # --- one daemon cycle ---------------------------------------------------------------

    def _cycle(self, snap: Snapshot, home: np.ndarray, d: Decision) -> float:
        """Sample, then bind at most one process; returns the next interval."""
        grew = self._sample(snap, home)
        # numad's own work, priced by the host: /proc/PID/stat of every process
        d.work.append(Work("proc_read", float(len(snap.clients))))
        if snap.topology.n < 2:
            return MAX_INTERVAL
        if grew:
            return MIN_INTERVAL / 2
        nd = Nodes.of(snap)
        rss_mb = snap.pages.sum(axis=1) * PAGE_SIZE / MIB
        cands = [i for i, c in enumerate(snap.clients)
                 if snap.managed[i] and home[i] >= 0 and c.id in self.procs
                 and self.procs[c.id].cpus_used > CPU_THRESHOLD
                 and rss_mb[i] > MEMORY_THRESHOLD_MB]
        assume_enough = sum(self.procs[snap.clients[i].id].cpus_used for i in cands) \
            <= nd.cpus_total.sum()
        if cands:
            # ... and numa_maps of each candidate, a walk of its page tables
            d.work.append(Work("numa_maps_page", float(snap.pages[cands].sum())))
        notes: list[Considered] = []
        moved = False
        for i in self._order(snap, cands, rss_mb):
            moved = self._consider(snap, int(i), nd, rss_mb, assume_enough, d, notes)
            if moved:
                break
        d.considered.extend(notes[:EXPLAIN_KEEP])
        return MIN_INTERVAL if moved else MAX_INTERVAL

    def _sample(self, snap: Snapshot, home: np.ndarray) -> bool:
        """Record one CPU sample per known process; admit new ones (size/3 per scan).
        True when the process table had to grow (numad then rescans soon)."""
        live = {c.id for c in snap.clients}
        for gone in [k for k in self.procs if k not in live]:
            del self.procs[gone]
        admit = self.table_size // 3
        for i, c in enumerate(snap.clients):
            p = self.procs.get(c.id)
            if p is None:
                if admit <= 0 or home[i] < 0:
                    continue
                admit -= 1
                # First sight: libvirt bound the VM where numad -w advised, so numad
                # finds it restricted to a subset ("bound 30 minutes ago").  A CPU rate
                # needs two readings of utime+stime: no sample yet.
                self.procs[c.id] = Proc(bind_time=snap.time - PREBOUND_AGE,
                                        nodes=frozenset([int(home[i])]))
                continue
            p.samples.append(100.0 * float(snap.received[i]))
        grew = False
        while len(self.procs) * HASH_TABLE_FILL > self.table_size:
            self.table_size *= 2
            grew = True
        return grew

    def _order(self, snap: Snapshot, cands: list[int], rss_mb: np.ndarray) -> list[int]:
        mag = {i: self.procs[snap.clients[i].id].cpus_used * rss_mb[i] for i in cands}
        unbound = sorted((i for i in cands if self.procs[snap.clients[i].id].bind_time is None),
                         key=lambda i: -mag[i])
        bound = [i for i in cands if self.procs[snap.clients[i].id].bind_time is not None]
        key = functools.cmp_to_key(_numad_order)
        bound.sort(key=lambda i: key((mag[i], self.procs[snap.clients[i].id].bind_time)))
        return unbound + bound

    def _consider(self, snap: Snapshot, i: int, nd: Nodes, rss_mb: np.ndarray,
                  assume_enough: bool, d: Decision, notes: list[Considered]) -> bool:
        c = snap.clients[i]
        p = self.procs[c.id]
        src = int(snap.home[i])
        used = p.cpus_used
        mbs = float(rss_mb[i])
        if c.mem_bytes / MIB > nd.mbs_total[0] and mbs * 5 / 4 > nd.mbs_total[0]:
            mbs = c.mem_bytes / MIB          # numad sizes a huge process by its VSZ
        mb_request = mbs * 100 / min(TARGET_UTILIZATION, 100.0)
        cpu_request = min(used * 100 / TARGET_UTILIZATION, 100.0 * c.vcpus)
        age = math.inf if p.bind_time is None else snap.time - p.bind_time
        if age < REEVALUATION_DELAY and not self._bypass_delay(
                nd, p, used, float(rss_mb[i]), cpu_request, mb_request):
            notes.append(Considered(c.id, src, src, Reason.NUMAD, 0.0,
                                    f"cool-down: bound {age:.0f} s ago < {REEVALUATION_DELAY:g} s"))
            return False
        proc_mbs = snap.pages[i] * PAGE_SIZE / MIB
        pick = pick_nodes(nd, cpu_request, mb_request, assume_enough, p, proc_mbs, used)
        allowed = snap.vectors().allowed[i]
        if not allowed[pick.nodes].all():
            notes.append(Considered(c.id, src, pick.nodes[0], Reason.NUMAD, pick.score,
                                    "target outside allowed nodes"))
            return False
        target = frozenset(pick.nodes)
        if (pick.nonlocal_pct <= 100 - TARGET_MEMLOCALITY and p.bind_time is not None
                and target == p.nodes):
            p.bind_time = snap.time
            notes.append(Considered(c.id, src, pick.nodes[0], Reason.NUMAD, pick.score,
                                    f"in place: {100 - pick.nonlocal_pct:.0f} % local"))
            return False
        self._bind(snap, i, pick, d)
        notes.append(Considered(c.id, src, pick.nodes[0], Reason.NUMAD, pick.score, "taken"))
        return True

    def _bypass_delay(self, nd: Nodes, p: Proc, used: float, mbs_used: float,
                      cpu_request: float, mb_request: float) -> bool:
        """numad re-evaluates a recently bound process that sits on the busiest node
        when moving it would narrow the spread of free CPU (by more than
        CPU_THRESHOLD) and of free memory."""
        cf, mf = nd.cpus_free, nd.mbs_free
        on_busiest = int(np.argmin(cf)) in p.nodes or int(np.argmin(mf)) in p.nodes
        fits = cpu_request < nd.cpus_total[0] and mb_request < nd.mbs_total[0]
        cpu_ok = (abs(cf.min() + used - cf.mean()) + abs(cf.max() - used - cf.mean())
                  < (cf.max() - cf.min()) - CPU_THRESHOLD)
        mem_ok = (abs(mf.min() + mbs_used - mf.mean()) + abs(mf.max() - mbs_used - mf.mean())
                  < (mf.max() - mf.min()))
        return on_busiest and fits and cpu_ok and mem_ok

    def _bind(self, snap: Snapshot, i: int, pick: Pick, d: Decision) -> None:
        """sched_setaffinity to the target, then migrate_pages for everything outside it."""
        c = snap.clients[i]
        src = int(snap.home[i])
        dst = pick.nodes[0]
        p = self.procs[c.id]
        p.bind_time = snap.time
        p.nodes = frozenset(pick.nodes)
        if dst != src:
            d.actions.append(SetHome(c.id, src, dst, Reason.NUMAD, pick.score,
                                     f"numad: nodes {sorted(pick.nodes)}, magnitude "
                                     f"{pick.score:.3g}, {pick.nonlocal_pct:.0f} % nonlocal"))
        pages = snap.pages[i]
        inside = np.zeros(pages.size, bool)
        inside[pick.nodes] = True
        # numad moves each source node to the target node holding least of the process.
        to = pick.nodes[int(np.argmin(pages[pick.nodes]))] if len(pick.nodes) > 1 else dst
        for s in np.flatnonzero(~inside & (pages > 0)):
            d.actions.append(MigratePages(c.id, int(s), int(to), int(pages[s]), Reason.NUMAD,
                                          pick.score, "numad: migrate_pages, all at once"))
