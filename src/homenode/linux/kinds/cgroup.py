"""The cgroup client kind: its home is the cgroup's cpuset.cpus, its pages move member
by member; there is no process to pin (members that exit are skipped)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType

from homenode.linux import affinity, migrate
from homenode.linux.actions_io import ActionIo
from homenode.linux.clients import CgroupClient
from homenode.linux.kinds.process import record_process
from homenode.linux.migrate import Moved
from homenode.linux.state import CgroupRecord, Cpus, Saved

Check = Callable[[], None]


def record_cgroup(g: CgroupClient, pending: Cpus | None,
                  to_wall: Callable[[float], float]) -> CgroupRecord | None:
    if not g.managed or (g.set_cpus is None and pending is None):
        return None
    members = [r for m in g.procs.values()
               if (r := record_process(m, None, to_wall)) is not None]
    return CgroupRecord(g.rel, g.set_cpus, pending, g.orig_cpus_text, g.home,
                        to_wall(g.home_since), members)


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
