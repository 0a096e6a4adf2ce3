"""The cgroup client kind: its home is the cgroup's cpuset.cpus, its pages move member
by member; there is no process to pin (members that exit are skipped)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType

from homenode.linux import affinity, migrate
from homenode.linux.actions_io import ActionIo
from homenode.linux.clients import CgroupClient, ProcessClient
from homenode.linux.discovery import ProcessInfo
from homenode.linux.kernel import cgroup, procfs
from homenode.linux.kernel.errors import SysError
from homenode.linux.kernel.sysfs import parse_cpulist
from homenode.linux.kinds.process import adopt_process, node_of, record_process
from homenode.linux.migrate import Moved
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


def adopt_cgroup(g: CgroupClient, rec: CgroupRecord, proc: str, sys: ModuleType,
                 topo: Topology, from_wall: Callable[[float], float], act: bool = True) -> str:
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
                st = procfs.read_stat(proc, m.pid)
            except SysError:
                continue
            if st.starttime != m.start:
                continue
            member = ProcessClient(ProcessInfo(m.pid, m.start, st.comm, "cgroup"), 0.0)
            if adopt_process(member, m, proc, sys, topo, from_wall, act) in ("adopted",
                                                                               "completed"):
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
        affinity.set_cgroup_home(c, cpus, io.proc, io.sys)

    def migrate(self, c: CgroupClient, src: int, dst: int, pages: int, now: float,
                io: ActionIo, alive: Check | None) -> Moved:
        return migrate.migrate_cgroup(c, src, dst, pages, io.bulk, io.proc, io.sys)

    def queue(self, c: CgroupClient, src: int, dst: int, pages: int, now: float,
              io: ActionIo) -> bool:
        return False        # a cgroup's members are copied in bulk, inside the tick

    def adopt(self, c: CgroupClient, carried: Saved, proc: str, sys: ModuleType,
              topo: Topology, from_wall: Callable[[float], float], act: bool) -> str | None:
        rec = carried.cgroups.pop(c.rel, None)
        if rec is None:
            return None
        return adopt_cgroup(c, rec, proc, sys, topo, from_wall, act)

    def restore(self, c: CgroupClient, proc: str, sys: ModuleType) -> int:
        return affinity.restore_cgroup(c, proc, sys)

    def keep_home(self, c: CgroupClient, cpus: Cpus, io: ActionIo) -> None:
        if cpus and c.set_cpus != cpus:
            affinity.set_cgroup_home(c, cpus, io.proc, io.sys)
        else:
            affinity.follow_cgroup_members(c, io.proc, io.sys)

    def resettle(self, c: CgroupClient, proc: str, sys: ModuleType) -> None:
        return None          # cpuset.cpus is one write: never half-done

    def capture_originals(self, c: CgroupClient, proc: str, sys: ModuleType) -> None:
        affinity.capture_cgroup_original(c)

    def record(self, c: CgroupClient, pending: Cpus | None,
               to_wall: Callable[[float], float], into: Saved) -> None:
        g = record_cgroup(c, pending, to_wall)
        if g is not None:
            into.cgroups[g.rel] = g

    def still_there(self, c: CgroupClient, proc: str) -> bool:
        return c.path.is_dir()

    def settled(self, c: CgroupClient, proc: str, sys: ModuleType) -> bool:
        return True          # cpuset.cpus is one write: nothing half-done to repair
