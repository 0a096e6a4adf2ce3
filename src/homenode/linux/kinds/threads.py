"""A process's home is the CPU affinity of *every* thread (sched_setaffinity takes a TID;
the PID alone would set only the main thread): setting it, repairing it, putting it back.

The process kind uses this directly; the cgroup kind uses it for its members when the
cpuset controller is not enabled for the cgroup.  Each thread's mask before homenode's
first change is kept for the restore.  ``io`` is the kernel context (``io.proc``, the
proc root; ``io.sys``, the syscall module that is the fault-injection seam).
"""

from __future__ import annotations

from collections.abc import Callable

from homenode.linux.actions_io import KernelIo
from homenode.linux.clients import ProcessClient
from homenode.linux.kernel.errors import ProcessGone, SysError

Check = Callable[[], None]


def capture_originals(c: ProcessClient, io: KernelIo, tids: list[int] | None = None) -> None:
    """Keep each thread's mask before homenode's first change (for the restore on exit,
    and for the state file's write-ahead record).  Later threads inherit homenode's mask,
    so originals are taken only while homenode has set nothing."""
    if c.set_cpus is not None:
        return
    if tids is None:
        tids = c.list_tids(io.proc)
    c.orig_mask = io.sys.sched_getaffinity(c.main_tid)
    c.orig_masks = {}
    for tid in tids:
        try:
            mask = io.sys.sched_getaffinity(tid)
        except ProcessGone:
            continue
        if mask != c.orig_mask:
            c.orig_masks[tid] = mask


def set_home(c: ProcessClient, cpus: frozenset[int], io: KernelIo,
             alive: Check | None = None) -> int:
    """Every thread of ``c`` onto ``cpus``; returns the threads set.

    All or nothing: if a call fails for a reason other than the thread's exit, the
    threads already moved are put back where they were (homenode's previous CPUs, or
    their originals) and the error is raised, so the masks agree with ``c.set_cpus``
    again.  (If even that fails, ``settled`` tells the host to repair it later.)
    ``alive`` (homenode.linux.kernel.identity) is called before every call: it raises
    ProcessGone once the process has exited, so that no call goes to a reused TID."""
    c.verify(io.proc)
    tids = c.list_tids(io.proc)
    capture_originals(c, io, tids)
    before = c.set_cpus
    done: list[int] = []
    try:
        for tid in tids:
            if alive is not None:
                alive()
            try:
                io.sys.sched_setaffinity(tid, cpus)
            except ProcessGone:
                continue             # this thread exited; the process goes on
            done.append(tid)
    except SysError:
        _put_back(c, done, before, io, alive)
        raise
    if tids and not done:
        # Not one thread could be found: the process has exited (its stat, read a
        # moment ago, may still be there); nothing was changed, nothing is recorded.
        raise ProcessGone(3, f"pid {c.pid}: no thread left to set")
    c.set_cpus = cpus
    c.tids_set = set(done)
    return len(done)


def _put_back(c: ProcessClient, tids: list[int], before: frozenset[int] | None,
              io: KernelIo, alive: Check | None = None) -> None:
    for tid in tids:
        mask = before if before is not None else c.orig_masks.get(tid, c.orig_mask)
        if mask is None:
            continue
        try:
            if alive is not None:
                alive()
            io.sys.sched_setaffinity(tid, mask)
        except SysError:
            continue             # gone, or failing too: ``settled`` will say so


def settled(c: ProcessClient, io: KernelIo) -> bool:
    """Every thread's mask is what homenode believes it is: ``c.set_cpus`` once it set
    one, else the thread's original (threads gone meanwhile are ignored)."""
    for tid in c.list_tids(io.proc):
        want = c.set_cpus if c.set_cpus is not None else c.orig_masks.get(tid, c.orig_mask)
        if want is None:
            continue
        try:
            if io.sys.sched_getaffinity(tid) != want:
                return False
        except ProcessGone:
            continue
    return True


def resettle(c: ProcessClient, io: KernelIo) -> None:
    """Make every thread's mask agree with homenode's bookkeeping again (after a failed
    put-back): homenode's CPUs on every thread, or each thread's original."""
    if c.set_cpus is not None:
        set_home(c, c.set_cpus, io)
        return
    c.verify(io.proc)
    for tid in c.list_tids(io.proc):
        mask = c.orig_masks.get(tid, c.orig_mask)
        if mask is None:
            continue
        try:
            io.sys.sched_setaffinity(tid, mask)
        except ProcessGone:
            continue


def follow_new_threads(c: ProcessClient, io: KernelIo) -> int:
    """Give threads born since the last tick the home's CPUs (``c.tids`` is this tick's
    listing).  New threads inherit their creator's mask, so this is mostly a no-op
    guarantee, but a thread created before the home was set and missed keeps its own."""
    if c.set_cpus is None:
        return 0
    new = [t for t in c.tids if t not in c.tids_set]
    if not new:
        return 0
    c.verify(io.proc)
    n = 0
    for tid in new:
        try:
            io.sys.sched_setaffinity(tid, c.set_cpus)
        except ProcessGone:
            continue
        c.tids_set.add(tid)
        n += 1
    return n


def restore(c: ProcessClient, io: KernelIo) -> int:
    """Put every thread's mask back; threads born later get the main thread's original."""
    if c.set_cpus is None or c.orig_mask is None:
        return 0
    c.verify(io.proc)
    main = io.sys.sched_getaffinity(c.main_tid)
    if not main or not main <= c.set_cpus:
        return 0                     # someone else re-bound it since: theirs stands
    n = 0
    for tid in c.list_tids(io.proc):
        try:
            io.sys.sched_setaffinity(tid, c.orig_masks.get(tid, c.orig_mask))
        except ProcessGone:
            continue
        n += 1
    c.set_cpus = None
    c.tids_set.clear()
    return n
