"""The cgroup client kind: its home is the cgroup's ``cpuset.cpus`` (its original text is
kept), or -- when the cpuset controller is not enabled for it -- the affinity of every
thread of its processes (homenode.linux.kinds.threads).  Its pages move member by member;
there is no process to pin (members that exit are skipped)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from homenode.linux.actions_io import ActionIo, KernelIo
from homenode.linux.clients import CgroupClient, ProcessClient
from homenode.linux.discovery import ProcessInfo
from homenode.linux.kernel import cgroup, procfs
from homenode.linux.kernel.errors import ProcessGone, SysError
from homenode.linux.kernel.sysfs import format_cpulist, parse_cpulist
from homenode.linux.kinds import threads
from homenode.linux.kinds.process import adopt_process, node_of, record_process
from homenode.linux.migrate import Moved, move_bulk, move_paced
from homenode.linux.state import CgroupRecord, Cpus, Saved
from homenode.model import Topology

Check = Callable[[], None]


def record_cgroup(g: CgroupClient, pending: Cpus | None,
                  to_wall: Callable[[float], float]) -> CgroupRecord | None:
    if not g.managed or (g.set_cpus is None and pending is None):
        return None
    members = [r for m in g.procs.values()
               if (r := record_process(m, None, to_wall)) is not None]
    return CgroupRecord(g.rel, g.set_cpus, pending, g.orig_cpus_text, g.home,
                        to_wall(g.home_since), members)


def adopt_cgroup(g: CgroupClient, rec: CgroupRecord, io: KernelIo, topo: Topology,
                 from_wall: Callable[[float], float], act: bool = True) -> str:
    """The same for a cgroup: its ``cpuset.cpus`` must still be what homenode wrote (or,
    without the cpuset controller, its members' affinities)."""
    ours = [m for m in (rec.pending, rec.set_cpus) if m]
    if g.uses_cpuset:
        text = cgroup.read_file(g.path, "cpuset.cpus").strip()
        current = frozenset(parse_cpulist(text)) if text else None
        if current is None or current not in ours or _narrowed_below(g):
            return "re-bound"
        g.set_cpus, g.orig_cpus_text = current, rec.orig_cpus_text
    else:
        for m in rec.members:
            try:
                st = procfs.read_stat(io.proc, m.pid)
            except SysError:
                continue
            if st.starttime != m.start:
                continue
            member = ProcessClient(ProcessInfo(m.pid, m.start, st.comm, "cgroup"), 0.0)
            if adopt_process(member, m, io, topo, from_wall, act) in ("adopted", "completed"):
                g.procs[m.pid] = member
        if not g.procs:
            return "re-bound"
        g.set_cpus = rec.set_cpus or rec.pending
    g.checked = True
    g.home = node_of(topo, g.set_cpus)
    g.home_since = from_wall(rec.home_since)
    return "adopted"


def _narrowed_below(g: CgroupClient) -> bool:
    """A descendant of ``g`` narrows its CPUs or memory: someone else bound part of it
    (the check ``CgroupClient`` makes at its first refresh, which adoption skips because
    ``g``'s own cpuset is homenode's)."""
    cpus = cgroup.read_cpuset(g.path, "cpuset.cpus.effective")
    mems = cgroup.read_cpuset(g.path, "cpuset.mems.effective")
    for d in cgroup.descendants(g.path)[1:]:
        dc = cgroup.read_cpuset(d, "cpuset.cpus")
        dm = cgroup.read_cpuset(d, "cpuset.mems")
        if (dc and cpus and not cpus <= dc) or (dm and mems and not mems <= dm):
            return True
    return False


# --- the home: cpuset.cpus, or the members' affinity ----------------------------------------

def capture_original(c: CgroupClient) -> None:
    """Keep the cgroup's ``cpuset.cpus`` text before homenode's first write."""
    if c.uses_cpuset and c.orig_cpus_text is None:
        c.orig_cpus_text = cgroup.read_file(c.path, "cpuset.cpus").strip()


def set_home(c: CgroupClient, cpus: frozenset[int], io: KernelIo) -> int:
    if c.uses_cpuset:
        capture_original(c)
        cgroup.write_file(c.path, "cpuset.cpus", format_cpulist(cpus))
        c.set_cpus = cpus
        return 1
    n = 0
    moved: list[tuple[ProcessClient, frozenset[int] | None]] = []
    try:
        for pid in cgroup.member_pids(c.path):
            member = _member(c, pid, io.proc)
            if member is None:
                continue
            before = member.set_cpus
            try:
                n += threads.set_home(member, cpus, io)
            except ProcessGone:
                c.procs.pop(pid, None)
                continue
            moved.append((member, before))
    except SysError:
        # All members or none, as for one process: the ones moved go back.
        for member, before in moved:
            try:
                if before is not None:
                    threads.set_home(member, before, io)
                else:
                    threads.restore(member, io)
            except SysError:
                continue
        raise
    c.set_cpus = cpus
    return n


def follow_members(c: CgroupClient, io: KernelIo) -> int:
    """Affinity fallback: processes that joined the cgroup get the home's CPUs."""
    if c.uses_cpuset or c.set_cpus is None:
        return 0
    n = 0
    for pid in c.pids:
        member = _member(c, pid, io.proc)
        if member is None or member.set_cpus == c.set_cpus:
            continue
        try:
            n += threads.set_home(member, c.set_cpus, io)
        except ProcessGone:
            c.procs.pop(pid, None)
    return n


def restore(c: CgroupClient, io: KernelIo) -> int:
    if c.set_cpus is None:
        return 0
    n = 0
    if c.uses_cpuset:
        if c.orig_cpus_text is not None and c.path.is_dir():
            n = 1
            try:
                # A newline clears it (an empty write is a no-op): inherit the parent's.
                cgroup.write_file(c.path, "cpuset.cpus", c.orig_cpus_text + "\n")
            except SysError:
                if c.orig_cpus_text:
                    raise
                # The kernel refuses to empty the cpuset of a populated cgroup (ENOSPC):
                # give it what it inherited -- the parent's CPUs as they are now.
                parent = cgroup.read_file(c.path.parent, "cpuset.cpus.effective").strip()
                cgroup.write_file(c.path, "cpuset.cpus", parent + "\n")
    else:
        for member in list(c.procs.values()):
            try:
                n += threads.restore(member, io)
            except SysError:
                continue
    c.set_cpus = None
    return n


def _member(c: CgroupClient, pid: int, proc: str) -> ProcessClient | None:
    """The member's tracked state, keyed by PID and checked by start time."""
    try:
        st = procfs.read_stat(proc, pid)
    except SysError:
        c.procs.pop(pid, None)
        return None
    if pid == 1 or pid == os.getpid() or st.kernel_thread:
        return None                  # never touched, whatever cgroup they are in
    m = c.procs.get(pid)
    if m is None or m.start != st.starttime:
        m = ProcessClient(ProcessInfo(pid, st.starttime, st.comm, "cgroup"), 0.0)
        c.procs[pid] = m
    return m


# --- one tick's pages ------------------------------------------------------------------------

def migrate_cgroup(g: CgroupClient, src: int, dst: int, budget: int, bulk: bool,
                   io: KernelIo) -> Moved:
    """One tick's pages of cgroup client ``g``: its members in turn, from where the last
    tick stopped, until the budget is spent.  Members that exit are skipped."""
    out = Moved()
    pids = g.pids[g.pid_cursor:] + g.pids[:g.pid_cursor]
    for k, pid in enumerate(pids):
        if budget - out.moved <= 0:
            g.pid_cursor = (g.pid_cursor + k) % max(len(g.pids), 1)
            break
        try:
            if bulk:
                move_bulk(pid, src, dst, io.sys)
                continue
            r = move_paced(io.proc, pid, src, dst, budget - out.moved, g.cursors.get(pid, 0),
                           None, io.sys)
        except SysError as e:
            if e.gone:
                continue
            out.error = e
            return out
        g.cursors[pid] = r.cursor
        out.moved += r.moved
        out.failed += r.failed
        if r.error is not None:
            out.error = r.error
            return out
    return out


class CgroupKind:
    def target(self, c: CgroupClient) -> str:
        return c.id

    @contextmanager
    def acting(self, c: CgroupClient, io: ActionIo) -> Iterator[Check | None]:
        yield None

    def after(self, c: CgroupClient, io: ActionIo, alive: Check | None) -> None:
        return None

    def set_home(self, c: CgroupClient, cpus: Cpus, io: ActionIo,
                 alive: Check | None) -> None:
        set_home(c, cpus, io)

    def migrate(self, c: CgroupClient, src: int, dst: int, pages: int, now: float,
                io: ActionIo, alive: Check | None) -> Moved:
        return migrate_cgroup(c, src, dst, pages, io.bulk, io)

    def queue(self, c: CgroupClient, src: int, dst: int, pages: int, now: float,
              io: ActionIo) -> bool:
        return False        # a cgroup's members are copied in bulk, inside the tick

    def adopt(self, c: CgroupClient, carried: Saved, io: KernelIo, topo: Topology,
              from_wall: Callable[[float], float], act: bool) -> str | None:
        rec = carried.cgroups.pop(c.rel, None)
        if rec is None:
            return None
        return adopt_cgroup(c, rec, io, topo, from_wall, act)

    def restore(self, c: CgroupClient, io: KernelIo) -> int:
        return restore(c, io)

    def keep_home(self, c: CgroupClient, cpus: Cpus, io: ActionIo) -> None:
        if cpus and c.set_cpus != cpus:
            set_home(c, cpus, io)
        else:
            follow_members(c, io)

    def resettle(self, c: CgroupClient, io: KernelIo) -> None:
        return None          # cpuset.cpus is one write: never half-done

    def capture_originals(self, c: CgroupClient, io: KernelIo) -> None:
        capture_original(c)

    def record(self, c: CgroupClient, pending: Cpus | None,
               to_wall: Callable[[float], float], into: Saved) -> None:
        g = record_cgroup(c, pending, to_wall)
        if g is not None:
            into.cgroups[g.rel] = g

    def still_there(self, c: CgroupClient, io: KernelIo) -> bool:
        return c.path.is_dir()

    def settled(self, c: CgroupClient, io: KernelIo) -> bool:
        return True          # cpuset.cpus is one write: nothing half-done to repair
