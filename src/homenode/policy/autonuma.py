"""The ``autonuma`` baseline: Linux's scheduler with automatic NUMA balancing on (the
default on every multi-node host), modelled at the simulator's granularity -- a client is
one task with one home node, and its pages are counts per node.

Source: ../shared/reference/linux-numa-interfaces.md section 2 (kernel 6.18
kernel/sched/fair.c), checked against fair.c's update_task_scan_period, task_scan_min,
update_scan_period and should_numa_migrate_memory.

* **Fork/exec placement**: a new task goes to the idlest node (least CPU wanted per core,
  counting tasks placed a moment earlier), with no thought for memory.
* **Scanning** (task_numa_work): each ``period`` of the task's own run time, one window
  of ``SCAN_SIZE`` of its address space is made PROT_NONE; the hinting faults that follow
  count per node (local or remote).  Windows walk the address space in order; a full
  pass is one scan sequence.  ``period`` is per window and stays within
  [task_scan_min, task_scan_max]: a full pass takes between ``SCAN_PERIOD_MIN`` and
  ``SCAN_PERIOD_MAX`` (1 s .. 60 s), never faster than ``MAX_SCAN_WINDOW`` MB/s.
* **Page migration** (should_numa_migrate_memory): a remote page moves to the node of the
  CPU that touched it if the *previous* fault on it came from that node too -- the
  two-stage filter.  After a task changes node, a page passes only once a whole pass has
  restamped it from the new node, so memory follows a task one to two passes later.
  Early in a task's life (scan sequence <= ``EARLY_SEQ``) faults migrate at once.
* **Placement** (task_numa_placement, once per pass): faults decay by half; the
  preferred node is the one with most faults; the scan period adapts
  (update_task_scan_period, ``NUMA_PERIOD_SLOTS``/``NUMA_PERIOD_THRESHOLD``).
* **Task moves** (task_numa_migrate): a task away from its preferred node moves there if
  the node has room or the move does not worsen the load imbalance between the two
  nodes; otherwise it swaps with a task there when the swap improves both tasks' fault
  locality by at least ``SMALLIMP`` (on the kernel's 0..2000 scale) and keeps the loads
  balanced.
* **CFS load balancing** between nodes (what AutoNUMA works against): a node asked for
  more CPU than it has sheds tasks to a node with idle CPUs, preferring tasks whose move
  does not take them off their preferred node (migrate_degrades_locality) unless
  balancing has failed ``CACHE_NICE_TRIES`` times.  Where no node has room for a task,
  an overloaded node rotates one-vCPU tasks with a less loaded one (``_rotate``:
  calculate_imbalance's migrate_load and detach_tasks' ``shr_bound(load,
  nr_balance_failed)``), one move a control tick.  A moved task's scan period restarts
  from the minimum (update_scan_period).
* **Scan gate**: at most one window per ``period`` of wall time (mm->numa_next_scan),
  however much run time is owed.  A single-threaded task's pages pass the two-stage
  filter at once unless a hinting fault has stamped them (counted per node).

Model assumptions (not the kernel's words): a VM's hinting faults are private with
probability 1/vcpus (a page a vCPU thread touched is next touched by the same thread);
every scanned page of a running task is touched before the next scan; a task's run time
is its CPU received, capped at one CPU (the mm-wide scan gate allows one window per
period whichever thread runs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from homenode.model import Considered, Decision, MigratePages, Reason, SetHome, Snapshot, Work
from homenode.policy.base import register
from homenode.settings import Settings
from homenode.sim.costs import Costs
from homenode.units import MIB, PAGE_SIZE

SCAN_DELAY = 1.0               # s: first scan after fork (scan_delay_ms = 1000)
SCAN_PERIOD_MIN = 1.0          # s: scan_period_min_ms = 1000, a full pass at most this fast
SCAN_PERIOD_MAX = 60.0         # s: scan_period_max_ms = 60000
SCAN_SIZE_MB = 256.0           # MB per window: scan_size_mb = 256
MAX_SCAN_WINDOW_MB = 2560.0    # MB/s: never scan faster (fair.c MAX_SCAN_WINDOW)
NUMA_PERIOD_SLOTS = 10         # update_task_scan_period works in tenths...
NUMA_PERIOD_THRESHOLD = 7      # ... and aims at 7/10 local (or private) faults
EARLY_SEQ = 4                  # scan sequences during which faults migrate at once
SMALLIMP = 30                  # least fault-locality improvement of a swap (0..2000)
CACHE_NICE_TRIES = 2           # NUMA domain: failed balances before locality is ignored
IDLE_CPU = 0.01                # cores: a task getting less than this does not run
LB_MAX_MOVES = 32              # tasks one balance pass may move (sysctl_sched_nr_migrate)
# CFS rotation between a node with more runnable tasks than CPUs and a busy one (see
# _rotate).  sd_init (kernel/sched/topology.c): a domain balances every balance_interval
# = sd_weight ms (its CPUs), busy_factor = 16 times less often while the CPU is busy;
# imbalance_pct = 117 is how much busier an overloaded node must be than an overloaded
# local one (find_busiest_group)
LB_INTERVAL_PER_CPU = 1e-3     # s of balance interval per CPU of the domain (sd_weight ms)
LB_BUSY_FACTOR = 16            # sd->busy_factor
LB_IMBALANCE_PCT = 117         # sd->imbalance_pct
# task_numa_work: "make sure tasks use at least 32x as much time to run other code than
# they used here, to limit NUMA PTE scanning overhead to 3% max" -- node_stamp += 32 x the
# run time the window's scan took
SCAN_OVERHEAD_FACTOR = 32
# task_numa_work: a window updates SCAN_SIZE of PTEs but walks at most 8x that much
# address space ("virtpages = pages * 8"), skipping what it may not update
SCAN_VIRT_FACTOR = 8


@dataclass
class Task:
    """AutoNUMA's per-task state (task_struct numa_* fields), one per client."""

    n: int
    period: float = SCAN_DELAY           # s per window (numa_scan_period)
    next_scan: float = SCAN_DELAY        # run time at which the next window is scanned
    runtime: float = 0.0                 # s of CPU the task has run (capped at 1 core)
    offset: float = 0.0                  # position in the current pass, 0..1
    seq: int = 0                         # completed passes (numa_scan_seq)
    node: int = -1                       # the node the task last ran on
    since_move: float = 0.0              # passes scanned since it last changed node
    preferred: int = -1                  # numa_preferred_nid
    arrived: float = 0.0                 # time it last came to its node (cfs_tasks order)
    stamps: np.ndarray = field(init=False)        # pages per node a hinting fault stamped
    mm_next: float = 0.0                 # wall time before which no window (numa_next_scan)
    faults: np.ndarray = field(init=False)        # decayed faults per memory node
    buffer: np.ndarray = field(init=False)        # this pass's faults per memory node
    local: float = 0.0                   # numa_faults_locality[1]
    remote: float = 0.0                  # numa_faults_locality[0]
    approved: np.ndarray = field(init=False)      # pages passed the filter, not yet moved
    last_pages: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.faults = np.zeros(self.n)
        self.buffer = np.zeros(self.n)
        self.approved = np.zeros(self.n)
        self.last_pages = np.zeros(self.n, np.int64)
        self.stamps = np.zeros(self.n)

    def weight(self, node: int) -> float:
        """task_weight: 1000 x this node's share of the task's faults."""
        total = self.faults.sum()
        return 1000.0 * self.faults[node] / total if total > 0 else 0.0


def scan_bounds(rss_pages: float) -> tuple[float, float]:
    """(task_scan_min, task_scan_max) in seconds per window for a task of this size."""
    windows = max(1, math.ceil(rss_pages * PAGE_SIZE / MIB / SCAN_SIZE_MB))
    floor = SCAN_SIZE_MB / MAX_SCAN_WINDOW_MB
    smin = max(floor, SCAN_PERIOD_MIN / windows)
    return smin, max(smin, SCAN_PERIOD_MAX / windows)


def adapt_period(period: float, local: float, remote: float, private: float,
                 shared: float, smin: float, smax: float) -> float:
    """update_task_scan_period: slower when local or shared, faster when remote and
    private.  Note the kernel's test is ``local + shared == 0``: a private task whose
    faults are all remote also scans slower."""
    if local + shared <= 0:
        return min(smax, 2 * period)
    slot = period / NUMA_PERIOD_SLOTS
    lr = int(local * NUMA_PERIOD_SLOTS / max(local + remote, 1e-12))
    ps = int(private * NUMA_PERIOD_SLOTS / max(private + shared, 1e-12))
    if ps >= NUMA_PERIOD_THRESHOLD:
        diff = max(ps - NUMA_PERIOD_THRESHOLD, 1) * slot
    elif lr >= NUMA_PERIOD_THRESHOLD:
        diff = max(lr - NUMA_PERIOD_THRESHOLD, 1) * slot
    else:
        diff = -(NUMA_PERIOD_THRESHOLD - max(lr, ps)) * slot
    return min(max(period + diff, smin), smax)


def two_stage_pass(since_move: float, width: float) -> float:
    """Fraction of a window of ``width`` (of a pass) whose pages were last faulted from
    the task's current node: each position was last visited one pass ago, which was
    after the move once ``since_move`` + (position in window) >= 1."""
    if width <= 0:
        return 0.0
    return min(max((width - (1.0 - since_move)) / width, 0.0), 1.0)


def too_imbalanced(src_load: float, dst_load: float, src_cap: float, dst_cap: float,
                   orig_src: float, orig_dst: float) -> bool:
    """load_too_imbalanced: the move would widen the capacity-weighted load gap."""
    imb = abs(dst_load * src_cap - src_load * dst_cap)
    old = abs(orig_dst * src_cap - orig_src * dst_cap)
    return imb > old + 1e-12


@register("autonuma")
class AutoNumaPolicy:
    name = "autonuma"

    def __init__(self, settings: Settings | None = None):
        self.s = settings or Settings()
        self.tasks: dict[str, Task] = {}
        self.last: float | None = None
        self.lb_failed = 0
        self.costs = Costs()
        # False: the tasks run where someone else puts them (a replay of a real
        # scheduler's moves, sim/calibration.py); only the memory side runs
        self.moves_tasks = True

    def bind_host_costs(self, costs: Costs) -> None:
        """The host's price of a PTE scan: the kernel times its own scan (the 3 % cap)."""
        self.costs = costs

    def decide(self, snap: Snapshot) -> Decision:
        d = Decision()
        if not snap.clients:
            return d
        dt = 0.0 if self.last is None else max(snap.time - self.last, 0.0)
        self.last = snap.time
        home = snap.home.copy()
        want = np.minimum(np.maximum(snap.demand, 0.0), snap.vectors().cpu_cap)
        self._fork_placement(snap, home, want, d)
        live = {c.id for c in snap.clients}
        for gone in [k for k in self.tasks if k not in live]:
            del self.tasks[gone]
        n = snap.topology.n
        for i, c in enumerate(snap.clients):
            if home[i] < 0 or not snap.managed[i]:
                continue
            t = self.tasks.setdefault(c.id, Task(n, node=int(home[i]), arrived=snap.time))
            self._observe_moves(t, snap.pages[i], int(home[i]))
            scanned = self._scan(t, snap, i, dt)
            if scanned > 0:
                # the kernel's work in the task's context, priced by the host
                d.work.append(Work("scan_page", scanned, c.id))
                d.work.append(Work("hint_fault", scanned, c.id))
        moved: dict[int, int] = {}
        if self.moves_tasks:
            self._numa_migrate(snap, home, want, d, moved)
            self._load_balance(snap, home, want, d, moved, dt)
        for i, dst in moved.items():
            self._moved(self.tasks[snap.clients[i].id], int(snap.home[i]), dst, snap.time)
        self._migrate_pages(snap, home, d)
        return d

    # --- fork/exec placement -----------------------------------------------------------

    def _fork_placement(self, snap: Snapshot, home: np.ndarray, want: np.ndarray,
                        d: Decision) -> None:
        new = np.flatnonzero((home < 0) & snap.managed)
        if new.size == 0:
            return
        topo = snap.topology
        placed = home >= 0
        used = np.bincount(home[placed], want[placed], topo.n)
        cap = snap.vectors().cpu_cap
        allowed = snap.vectors().allowed
        for i in new:
            load = np.where((topo.cores > 0) & allowed[i],
                            used / np.maximum(topo.cores, 1e-9), np.inf)
            dst = int(np.argmin(load))
            home[i] = dst
            used[dst] += want[i] if want[i] > 0 else cap[i]
            c = snap.clients[i]
            d.actions.append(SetHome(c.id, -1, dst, Reason.INITIAL, float(-load[dst]),
                                     f"idlest node: load {load[dst]:.2f}"))
            d.considered.append(Considered(c.id, -1, dst, Reason.INITIAL, float(-load[dst]),
                                           "taken"))

    # --- scanning, faults and the page-migration filter ---------------------------------

    def _observe_moves(self, t: Task, pages: np.ndarray, node: int) -> None:
        """Approved pages that have left their node since the last call were moved."""
        gone = np.maximum(t.last_pages - pages, 0)
        t.approved = np.maximum(t.approved - gone, 0.0)
        # the pages that left were faulted (approved), so stamped: their stamps go with
        # them (a migration keeps last_cpupid) to wherever pages arrived
        came = np.maximum(pages - t.last_pages, 0)
        lost = np.minimum(gone, t.stamps)
        t.stamps = t.stamps - lost
        if came.sum() > 0:
            t.stamps += came * min(1.0, float(lost.sum()) / float(came.sum()))
        t.stamps = np.minimum(t.stamps, pages)
        t.approved[node] = 0.0
        t.last_pages = pages.copy()
        if node != t.node:          # moved by someone else (or first sight)
            t.node, t.since_move = node, 0.0

    def _scan(self, t: Task, snap: Snapshot, i: int, dt: float) -> float:
        """Scan the windows due by the task's run time; returns the pages scanned (each
        a PTE made PROT_NONE and, as every scanned page is touched, a hinting fault)."""
        received = float(snap.received[i])
        if received < IDLE_CPU:
            return 0.0
        t.runtime += dt * min(received, 1.0)
        pages = snap.pages[i].astype(float)
        rss = pages.sum()
        if rss <= 0:
            return 0.0
        done = 0.0
        smin, smax = scan_bounds(rss)
        window = SCAN_SIZE_MB * MIB / PAGE_SIZE        # PTEs one window updates
        vcpus = snap.clients[i].vcpus
        # change_pte_range: a single-threaded task's pages already on the node it runs on
        # are left alone (no PTE update, no fault); the window then walks on, up to
        # SCAN_VIRT_FACTOR windows of address space.  Its remote pages not yet passed
        # lie ahead in the pass (those behind were faulted and moved).
        single = vcpus <= 1
        # task_numa_work's mm-wide gate: a window at most every ``period`` of wall time
        # (mm->numa_next_scan = now + numa_scan_period), whatever the run time owed
        wall = max(t.mm_next, snap.time - dt)
        while t.runtime >= t.next_scan and wall <= snap.time + 1e-9:
            t.next_scan += t.period
            wall += t.period
            t.mm_next = wall
            left = 1.0 - t.offset
            remote_left = np.maximum(pages - t.approved, 0.0)
            remote_left[t.node] = 0.0
            if single:
                ahead = float(remote_left.sum())
                w = min(left * window / max(ahead, 1e-12), SCAN_VIRT_FACTOR * window / rss,
                        left)
            else:
                w = min(window / rss, left)
            share = w / max(left, 1e-12)
            # should_numa_migrate_memory: a page whose last fault came from another node
            # waits for a second fault; a single-threaded task's pages, skipped while
            # local, carry no such stamp and pass at once -- unless a hinting fault has
            # stamped them (folio_xchg_last_cpupid; a migration keeps the stamp): per
            # node, the stamped share waits like a VM's pages
            passed = np.full(pages.size,
                             1.0 if t.seq <= EARLY_SEQ else two_stage_pass(t.since_move, w))
            if single and t.seq > EARLY_SEQ:
                stamped = np.minimum(t.stamps / np.maximum(pages, 1.0), 1.0)
                passed = 1.0 - stamped + stamped * passed
            updated = remote_left * share if single else pages * w
            t.approved += remote_left * share * passed
            done += float(updated.sum())
            # a fault that migrates its page counts on the node the page moved to
            # (do_numa_page: page_nid = target_nid), the task's own
            remote = updated.copy()
            remote[t.node] = 0.0
            moving = float((remote * passed).sum())
            t.buffer += remote * (1.0 - passed)
            t.buffer[t.node] += updated[t.node] + moving
            t.local += updated[t.node] + moving
            t.remote += float(remote.sum()) - moving
            t.next_scan += SCAN_OVERHEAD_FACTOR * float(updated.sum()) * self.costs.scan_page
            t.offset += w
            t.since_move += w
            t.stamps = np.minimum(t.stamps + updated, pages)
            if t.offset >= 1.0 - 1e-9:
                t.offset = 0.0
                t.seq += 1
                self._placement(t, snap, vcpus, smin, smax)
        return done

    def _placement(self, t: Task, snap: Snapshot, vcpus: int, smin: float,
                   smax: float) -> None:
        """task_numa_placement, once per pass: decay, preferred node, scan period."""
        t.faults = t.faults / 2 + t.buffer
        total = t.buffer.sum()
        private = total / max(vcpus, 1)
        t.buffer = np.zeros_like(t.buffer)
        cpu_nodes = snap.topology.cores > 0
        if t.faults[cpu_nodes].sum() > 0:
            t.preferred = int(np.flatnonzero(cpu_nodes)[np.argmax(t.faults[cpu_nodes])])
        t.period = adapt_period(t.period, t.local, t.remote, private, total - private,
                                smin, smax)
        t.local = t.remote = 0.0

    # --- task moves: AutoNUMA's own, then the load balancer's ---------------------------

    def _numa_migrate(self, snap: Snapshot, home: np.ndarray, want: np.ndarray,
                      d: Decision, moved: dict[int, int]) -> None:
        topo = snap.topology
        placed = home >= 0
        load = np.bincount(home[placed], want[placed], topo.n)
        allowed = snap.vectors().allowed
        ids = [c.id for c in snap.clients]
        for i, cid in enumerate(ids):
            t = self.tasks.get(cid)
            if t is None or t.preferred < 0 or t.preferred == home[i] or i in moved:
                continue
            src, dst = int(home[i]), t.preferred
            if not allowed[i, dst]:
                continue
            lp = want[i]
            spare = load[dst] + lp <= topo.cores[dst] + 1e-9
            if spare or not too_imbalanced(load[src] - lp, load[dst] + lp, topo.cores[src],
                                           topo.cores[dst], load[src], load[dst]):
                self._move(snap, i, src, dst, Reason.AUTONUMA, t.weight(dst) - t.weight(src),
                           "to preferred node", home, load, want, d, moved)
                continue
            j = self._swap_partner(snap, i, src, dst, home, load, want, moved)
            if j is not None:
                gain = t.weight(dst) - t.weight(src)
                self._move(snap, i, src, dst, Reason.SWAP, gain, f"swap with {ids[j]}", home,
                           load, want, d, moved)
                self._move(snap, j, dst, src, Reason.SWAP, gain, f"swap with {cid}", home,
                           load, want, d, moved)

    def _swap_partner(self, snap: Snapshot, i: int, src: int, dst: int, home: np.ndarray,
                      load: np.ndarray, want: np.ndarray, moved: dict[int, int]) -> int | None:
        topo = snap.topology
        t = self.tasks[snap.clients[i].id]
        taskimp = t.weight(dst) - t.weight(src)
        best, best_imp = None, 0.0
        allowed = snap.vectors().allowed
        for j in np.flatnonzero((home == dst) & snap.managed):
            cur = self.tasks.get(snap.clients[j].id)
            if cur is None or j in moved or not allowed[j, src]:
                continue
            imp = taskimp + cur.weight(src) - cur.weight(dst)
            if imp < SMALLIMP or imp <= best_imp + SMALLIMP / 2:
                continue
            d_load = want[i] - want[j]
            if too_imbalanced(load[src] - d_load, load[dst] + d_load, topo.cores[src],
                              topo.cores[dst], load[src], load[dst]):
                continue
            best, best_imp = int(j), imp
        return best

    def _load_balance(self, snap: Snapshot, home: np.ndarray, want: np.ndarray,
                      d: Decision, moved: dict[int, int], dt: float) -> None:
        """CFS between nodes: an overloaded node sheds tasks to nodes with idle CPUs;
        where none has room for one, it rotates a task to a less loaded node (_rotate)."""
        topo = snap.topology
        placed = home >= 0
        load = np.bincount(home[placed], want[placed], topo.n)
        live = topo.cores > 0
        failed = False
        shed = False
        for _ in range(LB_MAX_MOVES):
            over = np.where(live, load - topo.cores, -np.inf)
            src = int(np.argmax(over))
            idle = np.where(live, topo.cores - load, -np.inf)
            idle[src] = -np.inf
            dst = int(np.argmax(idle))
            if over[src] <= 1e-9 or idle[dst] <= 1e-9:
                break
            pick = self._lb_pick(snap, src, dst, home, want, over[src], idle[dst], moved)
            if pick is None:
                failed = True
                break
            self._move(snap, pick, src, dst, Reason.BALANCE, float(over[src]),
                       f"CFS load balance: node {src} over by {over[src]:.2f} cores", home,
                       load, want, d, moved)
            shed = True
        self.lb_failed = self.lb_failed + 1 if failed else 0
        if not shed:
            self._rotate(snap, home, want, load, d, moved, dt)

    def _rotate(self, snap: Snapshot, home: np.ndarray, want: np.ndarray, load: np.ndarray,
                d: Decision, moved: dict[int, int], dt: float) -> None:
        """CFS between an overloaded node and a less loaded one that has no room for a
        whole task (find_busiest_group's decision matrix: busiest overloaded, local
        fully busy: "force"; both overloaded: only when the busiest is LB_IMBALANCE_PCT
        % of the local's load per CPU, and local is below the domain's average).
        calculate_imbalance (migrate_load) allows ``min((busiest - avg) x busiest's
        CPUs, (avg - local) x local's CPUs)``, less than one task's load; detach_tasks
        skips a task while ``shr_bound(load, nr_balance_failed)`` is above it, so a task
        moves after ceil(log2(load / imbalance)) failed balances (commit 5a7f55590467),
        or after CACHE_NICE_TRIES + 1 if the move takes it off its preferred node while
        others on that node do not prefer it (migrate_degrades_locality).  The oldest
        arrival on the node is tried first (the tail of cfs_tasks).  Then the receiving
        node is the overloaded one and the same happens back: CFS rotates tasks between
        the nodes.

        The kernel balances every LB_INTERVAL_PER_CPU x CPUs x LB_BUSY_FACTOR s, so it
        makes many such moves per control tick, most undone within it; the model makes
        one a tick, when the tick holds the failed balances it needs -- what a sampler
        at the tick sees, the kernel's rate's lower bound.  Only one-vCPU clients rotate:
        the kernel moves a VM's vCPU threads one at a time, which the model (one home
        per client) cannot show without moving the whole VM."""
        if dt <= 0:
            return
        topo = snap.topology
        live = topo.cores > 0
        if live.sum() < 2:
            return
        cores = np.maximum(topo.cores, 1e-9)
        per = load / cores
        over = live & (load > topo.cores + 1e-9)
        if not over.any():
            return
        src = int(np.argmax(np.where(over, per, -np.inf)))
        rest = np.where(live, per, np.inf)
        rest[src] = np.inf
        dst = int(np.argmin(rest))
        avg = load[live].sum() / topo.cores[live].sum()
        if per[dst] >= min(per[src], avg) - 1e-12:
            return
        if over[dst] and 100 * per[src] <= LB_IMBALANCE_PCT * per[dst]:
            return
        imb = min((per[src] - avg) * topo.cores[src], (avg - per[dst]) * topo.cores[dst])
        if imb <= 1e-9:
            return
        attempts = dt / (LB_INTERVAL_PER_CPU * topo.cores[live].sum() * LB_BUSY_FACTOR)
        on_src = np.flatnonzero((home == src) & snap.managed & (want > 0))
        preferring = sum(1 for i in on_src
                         if getattr(self.tasks.get(snap.clients[i].id), "preferred", -1) == src)
        allowed = snap.vectors().allowed
        best, best_key = None, None
        for i in on_src:
            c = snap.clients[i]
            t = self.tasks.get(c.id)
            if i in moved or not allowed[i, dst] or c.vcpus > 1 or t is None:
                continue
            fails = 0 if want[i] <= imb else math.ceil(math.log2(want[i] / imb))
            if t.preferred == src and len(on_src) > preferring:
                fails = max(fails, CACHE_NICE_TRIES + 1)     # migrate_degrades_locality
            if fails + 1 > attempts:
                continue
            key = (fails, t.arrived)
            if best_key is None or key < best_key:
                best, best_key = int(i), key
        if best is None:
            return
        self._move(snap, best, src, dst, Reason.BALANCE, float(imb),
                   f"CFS rotation: node {src} {load[src]:.2f} against node {dst} "
                   f"{load[dst]:.2f} on {topo.cores[src]:g}/{topo.cores[dst]:g} cores, "
                   f"imbalance {imb:.2f}", home, load, want, d, moved)

    def _lb_pick(self, snap: Snapshot, src: int, dst: int, home: np.ndarray,
                 want: np.ndarray, over: float, idle: float, moved: dict[int, int]) -> int | None:
        """First task on ``src`` that fits in ``dst``'s idle CPUs -- or, once balancing
        has failed CACHE_NICE_TRIES times, that at least narrows the overload -- skipping
        tasks whose move would take them off their preferred node until then."""
        allowed = snap.vectors().allowed
        forced = self.lb_failed > CACHE_NICE_TRIES
        for i in np.flatnonzero((home == src) & snap.managed & (want > 0)):
            if i in moved or not allowed[i, dst]:
                continue
            t = self.tasks.get(snap.clients[i].id)
            if not forced and t is not None and t.preferred == src:
                continue            # migrate_degrades_locality
            if want[i] <= idle + 1e-9 or (forced and want[i] - idle < over):
                return int(i)
        return None

    def _move(self, snap: Snapshot, i: int, src: int, dst: int, reason: Reason, score: float,
              detail: str, home: np.ndarray, load: np.ndarray, want: np.ndarray,
              d: Decision, moved: dict[int, int]) -> None:
        cid = snap.clients[i].id
        home[i] = dst
        load[src] -= want[i]
        load[dst] += want[i]
        moved[i] = dst
        d.actions.append(SetHome(cid, src, dst, reason, score, detail))
        d.considered.append(Considered(cid, src, dst, reason, score, "taken"))

    def _moved(self, t: Task, src: int, dst: int, now: float) -> None:
        """update_scan_period: a task moved off its preferred node (or with none yet)
        scans again from the fastest period; stamps from the old node no longer pass."""
        if not (t.seq and (dst == t.preferred or (t.preferred >= 0 and src != t.preferred))):
            # task_scan_start; node_stamp (next_scan - period) is kept
            period = scan_bounds(t.last_pages.sum())[0]
            t.next_scan += period - t.period
            t.period = period
        t.node, t.since_move, t.arrived = dst, 0.0, now
        t.approved[:] = 0.0

    def _migrate_pages(self, snap: Snapshot, home: np.ndarray, d: Decision) -> None:
        """Hinting faults migrate synchronously in the kernel; the simulator moves what
        passed the filter as fast as its bandwidth allows, so re-issue what is owed."""
        for i, c in enumerate(snap.clients):
            t = self.tasks.get(c.id)
            if t is None or home[i] < 0 or home[i] != t.node:
                continue
            for src in np.flatnonzero(t.approved >= 1.0):
                n = int(min(t.approved[src], snap.pages[i, src]))
                if n > 0:
                    d.actions.append(MigratePages(c.id, int(src), int(home[i]), n,
                                                  Reason.AUTONUMA, 0.0,
                                                  "hinting faults passed the two-stage filter"))
