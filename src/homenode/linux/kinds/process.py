"""The process client kind (a vNUMA slice of a VM is a process client of its vCPU
threads): its home is every thread's CPU affinity, its pages move by move_pages(2) /
migrate_pages(2), and every call is made while a pidfd holds this very process."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType

from homenode.linux import affinity, migrate
from homenode.linux.actions_io import ActionIo
from homenode.linux.clients import ProcessClient
from homenode.linux.errors import ProcessGone, SysError
from homenode.linux.identity import Pinned
from homenode.linux.migrate import Moved
from homenode.linux.state import Cpus, ProcRecord, Saved

Check = Callable[[], None]
log = logging.getLogger("homenode.linux")


def record_process(c: ProcessClient, pending: Cpus | None,
                   to_wall: Callable[[float], float]) -> ProcRecord | None:
    if not c.managed or (c.set_cpus is None and pending is None):
        return None
    part = c.key[2] if len(c.key) > 2 else None       # a VM slice: its guest node
    return ProcRecord(c.pid, c.start, c.set_cpus, pending, c.orig_mask, dict(c.orig_masks),
                      c.home, to_wall(c.home_since), part)


class ProcessKind:
    def target(self, c: ProcessClient) -> str:
        return f"{c.pid}@{c.start}"

    @contextmanager
    def acting(self, c: ProcessClient, io: ActionIo) -> Iterator[Check | None]:
        if io.dry_run:
            c.verify(io.proc)            # a dry run, too, never "acts" on a reused PID
            yield None
            return
        # Held for the whole action: every call is made only while this very process
        # lives (a reused PID is never acted on).
        with Pinned(io.proc, c.pid, c.start) as pin:
            yield pin.check

    def after(self, c: ProcessClient, io: ActionIo, alive: Check | None) -> None:
        """The process still lives, or it exited during the calls (ProcessGone: it is
        dropped).  If its PID already belongs to a new process, that is counted: every
        call was made right after checking that the client itself was alive, so only
        the microseconds between a check and its call were exposed."""
        if alive is None:
            return
        try:
            alive()
        except ProcessGone:
            try:
                c.verify(io.proc)
            except ProcessGone as e:
                if "reused" in str(e):
                    io.stats.reused_during_action += 1
                    log.warning("pid %d exited during an action on %s and was reused "
                                   "at once (%s); each call had checked that %s was still "
                                   "alive", c.pid, c.name, e, c.name)
                raise
            raise

    def set_home(self, c: ProcessClient, cpus: Cpus, io: ActionIo,
                 alive: Check | None) -> None:
        affinity.set_process_home(c, cpus, io.proc, io.sys, alive)

    def migrate(self, c: ProcessClient, src: int, dst: int, pages: int, now: float,
                io: ActionIo, alive: Check | None) -> Moved:
        return migrate.migrate_process(c, src, dst, pages, now, io.bulk, io.proc, io.sys,
                                       alive)

    def keep_home(self, c: ProcessClient, cpus: Cpus, io: ActionIo) -> None:
        if cpus and c.set_cpus != cpus:
            affinity.set_process_home(c, cpus, io.proc, io.sys)   # CPUs came or went
        else:
            affinity.follow_new_threads(c, io.proc, io.sys)

    def resettle(self, c: ProcessClient, proc: str, sys: ModuleType) -> None:
        affinity.resettle(c, proc, sys)

    def capture_originals(self, c: ProcessClient, proc: str, sys: ModuleType) -> None:
        affinity.capture_originals(c, proc, sys)

    def record(self, c: ProcessClient, pending: Cpus | None,
               to_wall: Callable[[float], float], into: Saved) -> None:
        r = record_process(c, pending, to_wall)
        if r is not None:
            into.procs[r.key] = r

    def still_there(self, c: ProcessClient, proc: str) -> bool:
        try:
            c.verify(proc)
        except SysError:
            return False
        return True

    def settled(self, c: ProcessClient, proc: str, sys: ModuleType) -> bool:
        return affinity.settled(c, proc, sys)
