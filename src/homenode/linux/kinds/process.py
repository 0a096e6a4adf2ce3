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
from homenode.linux.kernel.errors import ProcessGone, SysError
from homenode.linux.kernel.identity import Pinned
from homenode.linux.migrate import Moved
from homenode.linux.state import Cpus, ProcRecord, Saved
from homenode.model import Topology

Check = Callable[[], None]
log = logging.getLogger("homenode.linux")


def record_process(c: ProcessClient, pending: Cpus | None,
                   to_wall: Callable[[float], float]) -> ProcRecord | None:
    if not c.managed or (c.set_cpus is None and pending is None):
        return None
    part = c.key[2] if len(c.key) > 2 else None       # a VM slice: its guest node
    return ProcRecord(c.pid, c.start, c.set_cpus, pending, c.orig_mask, dict(c.orig_masks),
                      c.home, to_wall(c.home_since), part)


def node_of(topo: Topology, cpus: Cpus | None) -> int | None:
    """The kernel node id whose CPUs are exactly ``cpus``."""
    if not cpus:
        return None
    for nid, node_cpus in zip(topo.node_ids, topo.cpus, strict=True):
        if frozenset(node_cpus) == cpus:
            return nid
    return None


# --- records ---------------------------------------------------------------------------------

# --- adoption --------------------------------------------------------------------------------

def adopt_process(c: ProcessClient, rec: ProcRecord, proc: str, sys: ModuleType,
                  topo: Topology, from_wall: Callable[[float], float], act: bool = True) -> str:
    """Restore homenode's bookkeeping of ``c`` from ``rec``; returns what happened (for
    the log): "adopted", "completed" (threads finished onto the pending CPUs),
    "nothing set" or "re-bound" (not adopted)."""
    if rec.key != c.key:
        return "re-bound"
    ours = [m for m in (rec.pending, rec.set_cpus) if m]
    originals = {m for m in (rec.orig_mask, *rec.orig_masks.values()) if m}
    masks: dict[int, Cpus] = {}
    for tid in c.list_tids(proc):           # a VM slice: its own vCPU threads
        try:
            masks[tid] = sys.sched_getaffinity(tid)
        except ProcessGone:
            continue
    if not masks or any(m not in ours and m not in originals for m in masks.values()):
        return "re-bound"
    have = set(masks.values())
    target = next((m for m in ours if m in have), None)
    if target is None:
        return "nothing set"          # every thread has its original: nothing to adopt
    c.orig_mask, c.orig_masks = rec.orig_mask, dict(rec.orig_masks)
    c.first_mask = rec.orig_mask
    c.checked = True
    c.set_cpus = target
    c.tids_set = {t for t, m in masks.items() if m == target}
    behind = [t for t in masks if t not in c.tids_set]
    if behind and act:
        for tid in behind:
            try:
                sys.sched_setaffinity(tid, target)
            except ProcessGone:
                continue
            c.tids_set.add(tid)
    c.home = node_of(topo, target)
    c.home_since = from_wall(rec.home_since)
    return "completed" if behind and act else "adopted"



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

    def queue(self, c: ProcessClient, src: int, dst: int, pages: int, now: float,
              io: ActionIo) -> bool:
        if io.queue is None or io.bulk:
            return False
        io.queue(c, src, dst, pages, now)
        return True

    def adopt(self, c: ProcessClient, carried: Saved, proc: str, sys: ModuleType,
              topo: Topology, from_wall: Callable[[float], float], act: bool) -> str | None:
        rec = carried.procs.pop(c.key, None)
        if rec is None:
            return None
        return adopt_process(c, rec, proc, sys, topo, from_wall, act)

    def restore(self, c: ProcessClient, proc: str, sys: ModuleType) -> int:
        try:
            return affinity.restore_process(c, proc, sys)
        except SysError as e:
            if e.gone:
                return 0         # exited: nothing to put back, nothing to say
            raise

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
