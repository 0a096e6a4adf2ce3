"""One tracked client each: what it is, what it uses, and whether someone else bound it.

``refresh(ctx)`` reads only what a tick needs: for a process its stat (identity, CPU,
RSS), its task list and run-queue waits, its main thread's allowed CPUs, and numa_maps
only when stale; for a cgroup cpu.stat, cpu.pressure and memory.numa_stat.  A process
whose PID now belongs to another process raises ``ProcessGone``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from homenode.linux.discovery import CLK_TCK, CgroupInfo, ProcessInfo, vcpu_threads
from homenode.linux.grouprules import Facts
from homenode.linux.kernel import cgroup, procfs
from homenode.linux.kernel.errors import ParseError, ProcessGone, SysError
from homenode.linux.kernel.sysfs import parse_cpulist
from homenode.units import PAGE_SIZE

# Re-read numa_maps at once when RSS moved by more than this fraction since the last read.
NUMA_MAPS_RSS_DELTA = 0.10
# A process is memory-bound by someone else when more than this fraction of its memory
# is under a bind/interleave/prefer policy.
BOUND_MEMORY_FRACTION = 0.5
# Run-queue waits are summed over the threads only up to this many threads; a process
# with more threads shows its CPU used as its demand (keeps the tick cheap).
MAX_SCHEDSTAT_THREADS = 64
SHARES_PER_VCPU = 1000         # ESXi "normal"
# numa_maps re-reads of clients found in the same scan are spread over this many slots.
MAPS_SPREAD = 8


@dataclass
class Ctx:
    """What every client's refresh and actuation need from the host this tick."""

    proc: str
    now: float
    online: frozenset[int]
    usable: frozenset[int]          # online and not isolated
    mem_nodes: frozenset[int]       # node ids with memory
    numa_maps_interval: float
    cgroup_root: Path | None
    manage_bound: bool
    slot: tuple[int, int] = (1, 0)  # (n, k): clients with pid % n == k are re-checked

    def due(self, pid: int) -> bool:
        """This tick re-checks slow-changing facts (someone else's binding) of ``pid``."""
        return pid % self.slot[0] == self.slot[1]


def nice_weight(nice: int) -> float:
    """CFS weight of a nice level relative to nice 0 (1.25x per step, as the kernel's
    sched_prio_to_weight table)."""
    return 1.25 ** (-max(-20, min(19, nice)))


@dataclass
class Tracked:
    """State common to process and cgroup clients."""

    id: str
    name: str
    home: int | None = None          # kernel node id; None = not placed yet
    home_since: float = 0.0
    demand: float = 0.0              # cores wanted
    received: float = 0.0            # cores used
    pages: dict[int, int] = field(default_factory=dict)   # node id -> 4 KiB pages
    managed: bool = True
    why_unmanaged: str = ""
    bound_cpus: frozenset[int] | None = None   # unmanaged: CPUs it is bound to
    bound_mems: frozenset[int] | None = None   # unmanaged: nodes its memory is bound to
    vcpus: int = 1
    mem_bytes: int = 0
    shares: int = SHARES_PER_VCPU
    limit: float = math.inf
    set_cpus: frozenset[int] | None = None     # what homenode set (None: never)
    version: int = 0                 # bumped when the Client model must be rebuilt
    # Labels the policy reads (homenode.linux.groups): the VM a vNUMA slice belongs to,
    # the affinity group, the allowed nodes (kernel ids) and preferHT.
    vm_id: str = ""
    group: str = ""
    allowed_nodes: frozenset[int] | None = None
    prefer_ht: bool = False
    labelled: bool = False           # the config's selectors were matched once
    _cpu: tuple[float, float, float | None] | None = None   # (time, used s, waited s)

    def unmanage(self, why: str, cpus: frozenset[int] | None = None,
                 mems: frozenset[int] | None = None) -> None:
        self.managed = False
        self.why_unmanaged = why
        self.bound_cpus, self.bound_mems = cpus, mems
        self.version += 1

    def _update_cpu(self, now: float, used_s: float, waited_s: float | None) -> None:
        if self._cpu is not None and now > self._cpu[0]:
            t, u, w = self._cpu
            dt = now - t
            self.received = max(0.0, (used_s - u) / dt)
            wait = max(0.0, (waited_s - w) / dt) if waited_s is not None and w is not None \
                else 0.0
            self.demand = self.received + wait
        self._cpu = (now, used_s, waited_s)

    def _set(self, **values: object) -> None:
        """Update model attributes; bump the version only when something changed."""
        if any(getattr(self, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(self, k, v)
            self.version += 1


class ProcessClient(Tracked):
    kind = "process"
    vm_name = ""          # a vNUMA slice: the name of its VM (homenode.linux.vmslice)

    def __init__(self, info: ProcessInfo, now: float):
        super().__init__(f"pid:{info.pid}", info.name, home_since=now,
                         mem_bytes=info.mem_bytes)
        self.pid = info.pid
        self.start = info.start
        self.vm = info.vm
        self.vm_vcpus = info.vcpus
        self.argv = info.argv
        self.tids: list[int] = []
        self.rss_pages = 0
        self.vmas: list[procfs.Vma] = []
        self.maps_read_at = -math.inf
        self.maps_rss = 0
        self.maps_stale = True
        self.first_mask: frozenset[int] | None = None
        self.checked = False
        self.orig_masks: dict[int, frozenset[int]] = {}    # tid -> mask before homenode
        self.orig_mask: frozenset[int] | None = None       # the main thread's
        self.tids_set: set[int] = set()
        self.cursor = 0                                    # page-scan resume address
        # src node id -> (until, pages on src then): a full pass found nothing movable
        self.stuck: dict[int, tuple[float, int]] = {}

    @property
    def key(self) -> tuple[int, ...]:
        return (self.pid, self.start)

    # The threads homenode homes, and where its memory may be moved from.  A vNUMA slice
    # of a VM (homenode.linux.vmslice) narrows these to its vCPU threads and guest RAM.

    @property
    def main_tid(self) -> int:
        """The thread whose CPU mask stands for the client's (checks, restore)."""
        return self.pid

    def list_tids(self, proc: str) -> list[int]:
        """The client's threads, listed afresh."""
        return procfs.list_tids(proc, self.pid)

    @property
    def mem_ranges(self) -> tuple[tuple[int, int], ...] | None:
        """Address ranges holding the client's memory; None = the whole process."""
        return None

    def _status_tid(self) -> int | None:
        return None

    def _own_vmas(self, ctx: Ctx) -> list[procfs.Vma]:
        return procfs.read_numa_maps(ctx.proc, self.pid, own_only=True)

    # What the group rules look at (homenode.linux.groups).

    def group_facts(self, proc: str, needs_cgroup: bool) -> Facts:
        """What the rules' selectors match: PID, command line, names and (only when a
        rule selects by cgroup) the process's cgroup."""
        cmdline = " ".join(self.argv) if self.argv else None
        if cmdline is None:
            try:
                cmdline = " ".join(procfs.read_cmdline(proc, self.pid))
            except SysError:
                cmdline = None
        cg = None
        if needs_cgroup:
            try:
                cg = (procfs.read_cgroup_v2_path(proc, self.pid) or "").strip("/")
            except SysError:
                cg = None
        return Facts(self.pid, cmdline, (self.name, self.vm_name), cg)

    def shm_pid(self) -> int | None:
        """The process whose shared memory mappings put it in an automatic group."""
        return self.pid

    def verify(self, proc: str) -> procfs.Stat:
        """This process's stat, or ProcessGone if the PID is gone or now someone else's."""
        st = procfs.read_stat(proc, self.pid)
        if st.starttime != self.start:
            raise ProcessGone(3, f"pid {self.pid} was reused (start time {st.starttime}, "
                                 f"expected {self.start})")
        return st

    def refresh(self, ctx: Ctx) -> None:
        st = self.verify(ctx.proc)
        self.rss_pages = st.rss_bytes // PAGE_SIZE
        self.tids = procfs.list_tids(ctx.proc, self.pid)
        waited = self._waited(ctx)
        self._update_cpu(ctx.now, (st.utime + st.stime) / CLK_TCK, waited)
        vcpus = self.vm_vcpus or max(1, min(st.num_threads, len(ctx.online) or 1))
        self._set(vcpus=vcpus, shares=int(SHARES_PER_VCPU * vcpus * nice_weight(st.nice)))
        if self.managed and (not self.checked or ctx.due(self.pid)):
            self._check_binding(ctx)
        if self._maps_due(ctx):
            self._read_numa_maps(ctx)

    def _waited(self, ctx: Ctx) -> float | None:
        if len(self.tids) > MAX_SCHEDSTAT_THREADS:
            return None
        total = 0
        for tid in self.tids:
            try:
                total += procfs.read_schedstat(ctx.proc, self.pid, tid)[1]
            except ProcessGone:
                continue            # the thread just exited
            except (SysError, ParseError):
                return None
        return total / 1e9

    def _check_binding(self, ctx: Ctx) -> None:
        """Unmanage the process if someone else narrowed its CPUs or memory."""
        status = procfs.read_status_bytes(ctx.proc, self.pid, self._status_tid())
        main = frozenset(parse_cpulist(procfs.status_field(status, "Cpus_allowed_list"))) \
            & ctx.online
        if not self.checked:
            self.checked = True
            self.first_mask = main
            if ctx.manage_bound:
                return
            allowed = self._allowed_cpus(ctx)
            mems = frozenset(parse_cpulist(procfs.status_field(status, "Mems_allowed_list")))
            for tid in self.tids:
                try:
                    mask = procfs.allowed_cpus(procfs.read_status(ctx.proc, self.pid, tid))
                except ProcessGone:
                    continue
                if not allowed <= (mask & ctx.online):
                    self.unmanage(f"thread {tid} bound to CPUs {sorted(mask)}", mask, None)
                    return
            if ctx.mem_nodes and not ctx.mem_nodes <= mems:
                self.unmanage(f"memory bound to nodes {sorted(mems)}", None, mems)
            return
        if ctx.manage_bound:
            return
        if self.set_cpus is not None:
            # The kernel may narrow our mask (CPU hot-unplug), never widen or move it.
            if not main or not main <= self.set_cpus:
                self.unmanage(f"re-bound by someone else to CPUs {sorted(main)}", main)
                self.orig_masks.clear()
                self.orig_mask = None
        elif self.first_mask is not None and main != self.first_mask and \
                not (self.first_mask <= main):
            self.unmanage(f"bound by someone else to CPUs {sorted(main)}", main)

    def _allowed_cpus(self, ctx: Ctx) -> frozenset[int]:
        """CPUs the process may use: online, not isolated, within its cgroup's cpuset."""
        allowed = ctx.usable
        if ctx.cgroup_root is not None:
            try:
                rel = procfs.read_cgroup_v2_path(ctx.proc, self.pid)
            except SysError:
                rel = None
            if rel is not None:
                eff = cgroup.read_cpuset(ctx.cgroup_root / rel.strip("/"),
                                         "cpuset.cpus.effective")
                if eff:
                    allowed = allowed & eff
        return allowed

    def _maps_due(self, ctx: Ctx) -> bool:
        if self.maps_stale or ctx.now - self.maps_read_at >= ctx.numa_maps_interval:
            return True
        base = max(self.maps_rss, 1)
        return abs(self.rss_pages - self.maps_rss) > NUMA_MAPS_RSS_DELTA * base

    def _read_numa_maps(self, ctx: Ctx) -> None:
        self.vmas = self._own_vmas(ctx)
        self.pages = procfs.node_pages(self.vmas)
        first = self.maps_read_at == -math.inf
        self.maps_read_at, self.maps_rss, self.maps_stale = ctx.now, self.rss_pages, False
        if first:
            # Clients found together would re-read together: spread them over the interval.
            self.maps_read_at -= ctx.numa_maps_interval * (self.pid % MAPS_SPREAD) / MAPS_SPREAD
        if self.managed and not ctx.manage_bound and \
                procfs.bound_fraction(self.vmas) > BOUND_MEMORY_FRACTION:
            nodes = {n for v in self.vmas if v.binding for n in v.nodes}
            self.unmanage("memory under a bind/interleave/prefer policy", None,
                          frozenset(nodes))

    def vmas_on(self, node: int) -> set[int]:
        """Starts of the VMAs whose own pages the last numa_maps showed on ``node``."""
        return {v.start for v in self.vmas if v.own_pages_4k().get(node, 0) > 0}

    def page_size_kb(self) -> dict[int, int]:
        """VMA start -> page size (kB), from the last numa_maps (hugetlb VMAs)."""
        return {v.start: v.page_kb for v in self.vmas if v.page_kb != procfs.SYSTEM_PAGE_KB}


class CgroupClient(Tracked):
    kind = "cgroup"

    def __init__(self, info: CgroupInfo, ctx: Ctx):
        super().__init__(f"cg:{info.rel}", info.name, home_since=ctx.now)
        self.path = info.path
        self.rel = info.rel
        self.uses_cpuset = cgroup.has_cpuset(self.path)
        self.orig_cpus_text: str | None = None
        self.pids: list[int] = []
        self.pid_cursor = 0
        self.cursors: dict[int, int] = {}
        self.checked = False
        self.procs: dict[int, ProcessClient] = {}    # affinity fallback: members' state
        self.refresh_members(ctx)

    @property
    def key(self) -> str:
        return self.rel

    def group_facts(self, proc: str, needs_cgroup: bool) -> Facts:
        return Facts(None, None, (self.name, ""), self.rel)

    def shm_pid(self) -> int | None:
        return None           # a cgroup is grouped by the rules, never automatically

    def refresh_members(self, ctx: Ctx) -> None:
        """Members and their vCPUs (at discovery and every scan)."""
        self.pids = cgroup.member_pids(self.path)
        vcpus = sum(vcpu_threads(ctx.proc, p) for p in self.pids)
        eff = cgroup.read_cpuset(self.path, "cpuset.cpus.effective")
        limit = cgroup.cpu_limit(self.path)
        if not vcpus:
            n = len(eff) if eff else len(ctx.online)
            vcpus = max(1, min(n, math.ceil(limit) if limit < math.inf else n))
        weight = cgroup.cpu_weight(self.path)
        mem = cgroup.memory_max(self.path) or 0
        self._set(vcpus=vcpus, limit=limit, mem_bytes=mem,
                  shares=int(SHARES_PER_VCPU * vcpus * weight / cgroup.DEFAULT_CPU_WEIGHT))

    def refresh(self, ctx: Ctx) -> None:
        if not self.path.is_dir():
            raise ProcessGone(2, f"cgroup {self.rel} removed")
        used = cgroup.usage_us(self.path) / 1e6
        waited = cgroup.waiting_us(self.path)
        self._update_cpu(ctx.now, used, None if waited is None else waited / 1e6)
        self.pages = cgroup.node_pages(self.path)
        if not self.checked:
            self.checked = True
            if not ctx.manage_bound:
                self._check_binding()

    def _check_binding(self) -> None:
        """Unmanaged when it or a descendant narrows CPUs or memory below its parent's."""
        parent_cpus = cgroup.read_cpuset(self.path.parent, "cpuset.cpus.effective")
        parent_mems = cgroup.read_cpuset(self.path.parent, "cpuset.mems.effective")
        for g in cgroup.descendants(self.path):
            cpus = cgroup.read_cpuset(g, "cpuset.cpus")
            mems = cgroup.read_cpuset(g, "cpuset.mems")
            if cpus and parent_cpus and not parent_cpus <= cpus:
                self.unmanage(f"{g.name} sets cpuset.cpus {sorted(cpus)}", cpus)
                return
            if mems and parent_mems and not parent_mems <= mems:
                self.unmanage(f"{g.name} sets cpuset.mems {sorted(mems)}", None, mems)
                return
