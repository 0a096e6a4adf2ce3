"""The process client kind (a vNUMA slice of a VM is a process client of its vCPU
threads): its home is every thread's CPU affinity, its pages move by move_pages(2) /
migrate_pages(2), and every call is made while a pidfd holds this very process."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from homenode.linux.actions_io import ActionIo, KernelIo
from homenode.linux.clients import ProcessClient
from homenode.linux.kernel.errors import ProcessGone, SysError
from homenode.linux.kernel.identity import Pinned
from homenode.linux.kinds import threads
from homenode.linux.migrate import STUCK_BACKOFF_S, Moved, move_bulk, move_paced
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


# --- adoption --------------------------------------------------------------------------------

def adopt_process(c: ProcessClient, rec: ProcRecord, io: KernelIo, topo: Topology,
                  from_wall: Callable[[float], float], act: bool = True) -> str:
    """Restore homenode's bookkeeping of ``c`` from ``rec``; returns what happened (for
    the log): "adopted", "completed" (threads finished onto the pending CPUs),
    "nothing set" or "re-bound" (not adopted)."""
    if rec.key != c.key:
        return "re-bound"
    ours = [m for m in (rec.pending, rec.set_cpus) if m]
    originals = {m for m in (rec.orig_mask, *rec.orig_masks.values()) if m}
    masks: dict[int, Cpus] = {}
    for tid in c.list_tids(io.proc):        # a VM slice: its own vCPU threads
        try:
            masks[tid] = io.sys.sched_getaffinity(tid)
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
                io.sys.sched_setaffinity(tid, target)
            except ProcessGone:
                continue
            c.tids_set.add(tid)
    c.home = node_of(topo, target)
    c.home_since = from_wall(rec.home_since)
    return "completed" if behind and act else "adopted"


# --- one tick's pages ------------------------------------------------------------------------

def migrate_process(c: ProcessClient, src: int, dst: int, budget: int, now: float,
                    bulk: bool, io: KernelIo, alive: Check | None = None) -> Moved:
    """One tick's pages of process client ``c`` from node id ``src`` to ``dst``, with its
    bookkeeping (scan cursor, pages per node, stuck nodes) kept in step -- also when a
    call fails half-way (``error``): the pages moved before it are accounted, and
    numa_maps is re-read next tick to learn where every page really is."""
    stuck = c.stuck.get(src)
    if stuck is not None and now < stuck[0] and c.pages.get(src, 0) <= stuck[1]:
        return Moved(cursor=c.cursor)
    if bulk and c.mem_ranges is None:     # a vNUMA slice moves paced: not the whole VM
        before = c.pages.get(src, 0)
        c.maps_stale = True                # re-read numa_maps next tick, whatever happens
        try:
            not_moved = move_bulk(c.pid, src, dst, io.sys, alive)
        except SysError as e:
            if e.gone:
                raise
            return Moved(error=e)
        return Moved(moved=max(before - not_moved, 0))
    r = move_paced(io.proc, c.pid, src, dst, budget, c.cursor, c.page_size_kb(), io.sys,
                   c.vmas_on(src), c.mem_ranges, alive)
    c.cursor = r.cursor
    c.pages[src] = max(c.pages.get(src, 0) - r.moved, 0)
    c.pages[dst] = c.pages.get(dst, 0) + r.moved
    if r.error is not None:
        c.maps_stale = True
    elif r.wrapped and r.moved == 0:
        c.maps_stale = True                # re-read numa_maps next tick
        c.stuck[src] = (now + STUCK_BACKOFF_S, c.pages.get(src, 0))
    elif r.moved:
        c.stuck.pop(src, None)
    return r


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
        threads.set_home(c, cpus, io, alive)

    def migrate(self, c: ProcessClient, src: int, dst: int, pages: int, now: float,
                io: ActionIo, alive: Check | None) -> Moved:
        return migrate_process(c, src, dst, pages, now, io.bulk, io, alive)

    def queue(self, c: ProcessClient, src: int, dst: int, pages: int, now: float,
              io: ActionIo) -> bool:
        if io.queue is None or io.bulk:
            return False
        io.queue(c, src, dst, pages, now)
        return True

    def adopt(self, c: ProcessClient, carried: Saved, io: KernelIo, topo: Topology,
              from_wall: Callable[[float], float], act: bool) -> str | None:
        rec = carried.procs.pop(c.key, None)
        if rec is None:
            return None
        return adopt_process(c, rec, io, topo, from_wall, act)

    def restore(self, c: ProcessClient, io: KernelIo) -> int:
        try:
            return threads.restore(c, io)
        except SysError as e:
            if e.gone:
                return 0         # exited: nothing to put back, nothing to say
            raise

    def keep_home(self, c: ProcessClient, cpus: Cpus, io: ActionIo) -> None:
        if cpus and c.set_cpus != cpus:
            threads.set_home(c, cpus, io)     # CPUs came or went
        else:
            threads.follow_new_threads(c, io)

    def resettle(self, c: ProcessClient, io: KernelIo) -> None:
        threads.resettle(c, io)

    def capture_originals(self, c: ProcessClient, io: KernelIo) -> None:
        threads.capture_originals(c, io)

    def record(self, c: ProcessClient, pending: Cpus | None,
               to_wall: Callable[[float], float], into: Saved) -> None:
        r = record_process(c, pending, to_wall)
        if r is not None:
            into.procs[r.key] = r

    def still_there(self, c: ProcessClient, io: KernelIo) -> bool:
        try:
            c.verify(io.proc)
        except SysError:
            return False
        return True

    def settled(self, c: ProcessClient, io: KernelIo) -> bool:
        return threads.settled(c, io)
