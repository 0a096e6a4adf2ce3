"""One guest NUMA node of a QEMU VM as its own client (a vNUMA slice).

A VM started with a guest NUMA topology (``-numa node,cpus=...,memdev=...``) is split
into one client per guest node, as ESXi splits a wide VM into NUMA clients: the client
is that node's vCPU threads (``CPU n/KVM``, n in the node's ``cpus``) and the memory of
its backends (homenode.linux.guestmem).  Its id is ``pid:PID/N`` (N the guest node id),
its name ``GUEST/N``, and ``vm_id`` ``pid:PID`` ties the slices together so the policy
keeps them on close nodes.

A home sets the CPU affinity of the slice's vCPU threads only; QEMU's other threads
(main loop, I/O threads) are left where they are: they serve every guest node.  Page
moves scan only the slice's backend mappings.  CPU used and waited are the sums over the
slice's threads (/proc/PID/task/TID/schedstat).
"""

from __future__ import annotations

import dataclasses
import logging

from homenode.linux.clients import SHARES_PER_VCPU, Ctx, ProcessClient, nice_weight
from homenode.linux.discovery import CLK_TCK, ProcessInfo
from homenode.linux.guestmem import GuestVm, within
from homenode.linux.kernel import procfs
from homenode.linux.kernel.errors import ParseError, ProcessGone, SysError
from homenode.linux.qemu import GuestNode
from homenode.units import PAGE_SIZE

log = logging.getLogger("homenode.linux")


class VmSlice(ProcessClient):
    kind = "vm-slice"

    def __init__(self, info: ProcessInfo, now: float):
        assert info.guest is not None and info.guest_node is not None
        super().__init__(info, now)
        self.guest: GuestVm = info.guest
        self.guest_node: GuestNode = info.guest_node
        self.vm_name = info.name
        self.id = f"pid:{info.pid}/{self.guest_node.id}"
        self.name = f"{info.name}/{self.guest_node.id}"
        self.vm_id = f"pid:{info.pid}"
        self.vcpus = info.vcpus           # 0 for a memory-only guest node
        self._warned_missing = False

    @property
    def key(self) -> tuple[int, ...]:
        return (self.pid, self.start, self.guest_node.id)

    def shm_pid(self) -> int | None:
        return None           # a VM's slices share its memory: that makes no group

    @property
    def main_tid(self) -> int:
        return self.tids[0] if self.tids else self.pid

    def list_tids(self, proc: str) -> list[int]:
        return self.guest.node_tids(proc, self.guest_node)

    @property
    def mem_ranges(self) -> tuple[tuple[int, int], ...]:
        return self.guest.node_ranges(self.guest_node)

    def _status_tid(self) -> int | None:
        return self.tids[0] if self.tids else None

    def _own_vmas(self, ctx: Ctx) -> list[procfs.Vma]:
        """The VMAs of the slice's backends.  Every page in them is the guest's, also
        the page cache of a file backend (numa_maps shows no ``anon=`` there): all are
        counted."""
        vmas = self.guest.numa_maps(ctx.proc, ctx.now)
        missing = self.guest.missing(self.guest_node)
        if missing and not self._warned_missing:
            self._warned_missing = True
            log.warning("%s (%s): no mapping found for memory backend(s) %s; their pages "
                        "are not counted", self.name, self.id, ", ".join(missing))
        ranges = self.mem_ranges
        return [dataclasses.replace(v, _own=v.pages_4k()) for v in vmas
                if within(v.start, ranges)]

    def refresh(self, ctx: Ctx) -> None:
        st = self.verify(ctx.proc)
        self.rss_pages = st.rss_bytes // PAGE_SIZE
        self.tids = self.guest.node_tids(ctx.proc, self.guest_node, ctx.now)
        used, waited = self._thread_times(ctx)
        self._update_cpu(ctx.now, used, waited)
        vcpus = len(self.tids) if self.tids else self.vcpus
        self._set(vcpus=vcpus, shares=int(SHARES_PER_VCPU * vcpus * nice_weight(st.nice)),
                  mem_bytes=self.guest.layout.mem_bytes(self.guest_node))
        if self.managed and (not self.checked or ctx.due(self.pid)):
            self._check_binding(ctx)
        if self._maps_due(ctx):
            self._read_numa_maps(ctx)

    def _thread_times(self, ctx: Ctx) -> tuple[float, float | None]:
        """Seconds on a CPU and waiting for one, summed over the slice's threads."""
        run = wait = 0
        waits_known = True
        for tid in self.tids:
            try:
                r, w = procfs.read_schedstat(ctx.proc, self.pid, tid)
            except ProcessGone:
                continue                   # this vCPU thread just exited
            except (SysError, ParseError):
                st = procfs.read_stat(ctx.proc, self.pid, tid)
                r, w = (st.utime + st.stime) * 1_000_000_000 // CLK_TCK, 0
                waits_known = False
            run += r
            wait += w
        return run / 1e9, (wait / 1e9 if waits_known else None)


def new_process_client(info: ProcessInfo, now: float) -> ProcessClient:
    """The client for what discovery found: a process, or one guest node of a VM."""
    if info.guest is not None and info.guest_node is not None:
        return VmSlice(info, now)
    return ProcessClient(info, now)
