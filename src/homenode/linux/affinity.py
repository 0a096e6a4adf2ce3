"""Setting a home node's CPUs, and putting them back on exit.

A process's home is the CPU affinity of *every* thread (sched_setaffinity takes a TID;
the PID alone would set only the main thread).  Its identity is checked right before;
each thread's mask before homenode's first change is kept for the restore.  A cgroup's
home is its ``cpuset.cpus`` (its original text is kept), or -- when the cpuset controller
is not enabled for it -- the affinity of every thread of its processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType

from homenode.linux.clients import CgroupClient, ProcessClient
from homenode.linux.discovery import ProcessInfo
from homenode.linux.kernel import cgroup, procfs
from homenode.linux.kernel import numa_syscalls as default_sys
from homenode.linux.kernel.errors import ProcessGone, SysError
from homenode.linux.kernel.sysfs import format_cpulist

Check = Callable[[], None]


def capture_originals(c: ProcessClient, proc: str, sys: ModuleType = default_sys,
                      tids: list[int] | None = None) -> None:
    """Keep each thread's mask before homenode's first change (for the restore on exit,
    and for the state file's write-ahead record).  Later threads inherit homenode's mask,
    so originals are taken only while homenode has set nothing."""
    if c.set_cpus is not None:
        return
    if tids is None:
        tids = c.list_tids(proc)
    c.orig_mask = sys.sched_getaffinity(c.main_tid)
    c.orig_masks = {}
    for tid in tids:
        try:
            mask = sys.sched_getaffinity(tid)
        except ProcessGone:
            continue
        if mask != c.orig_mask:
            c.orig_masks[tid] = mask


def set_process_home(c: ProcessClient, cpus: frozenset[int], proc: str,
                     sys: ModuleType = default_sys, alive: Check | None = None) -> int:
    """Every thread of ``c`` onto ``cpus``; returns the threads set.

    All or nothing: if a call fails for a reason other than the thread's exit, the
    threads already moved are put back where they were (homenode's previous CPUs, or
    their originals) and the error is raised, so the masks agree with ``c.set_cpus``
    again.  (If even that fails, ``settled`` tells the host to repair it later.)
    ``alive`` (homenode.linux.kernel.identity) is called before every call: it raises
    ProcessGone once the process has exited, so that no call goes to a reused TID."""
    c.verify(proc)
    tids = c.list_tids(proc)
    capture_originals(c, proc, sys, tids)
    before = c.set_cpus
    done: list[int] = []
    try:
        for tid in tids:
            if alive is not None:
                alive()
            try:
                sys.sched_setaffinity(tid, cpus)
            except ProcessGone:
                continue             # this thread exited; the process goes on
            done.append(tid)
    except SysError:
        _put_back(c, done, before, sys, alive)
        raise
    if tids and not done:
        # Not one thread could be found: the process has exited (its stat, read a
        # moment ago, may still be there); nothing was changed, nothing is recorded.
        raise ProcessGone(3, f"pid {c.pid}: no thread left to set")
    c.set_cpus = cpus
    c.tids_set = set(done)
    return len(done)


def _put_back(c: ProcessClient, tids: list[int], before: frozenset[int] | None,
              sys: ModuleType, alive: Check | None = None) -> None:
    for tid in tids:
        mask = before if before is not None else c.orig_masks.get(tid, c.orig_mask)
        if mask is None:
            continue
        try:
            if alive is not None:
                alive()
            sys.sched_setaffinity(tid, mask)
        except SysError:
            continue             # gone, or failing too: ``settled`` will say so


def settled(c: ProcessClient, proc: str, sys: ModuleType = default_sys) -> bool:
    """Every thread's mask is what homenode believes it is: ``c.set_cpus`` once it set
    one, else the thread's original (threads gone meanwhile are ignored)."""
    for tid in c.list_tids(proc):
        want = c.set_cpus if c.set_cpus is not None else c.orig_masks.get(tid, c.orig_mask)
        if want is None:
            continue
        try:
            if sys.sched_getaffinity(tid) != want:
                return False
        except ProcessGone:
            continue
    return True


def resettle(c: ProcessClient, proc: str, sys: ModuleType = default_sys) -> None:
    """Make every thread's mask agree with homenode's bookkeeping again (after a failed
    put-back): homenode's CPUs on every thread, or each thread's original."""
    if c.set_cpus is not None:
        set_process_home(c, c.set_cpus, proc, sys)
        return
    c.verify(proc)
    for tid in c.list_tids(proc):
        mask = c.orig_masks.get(tid, c.orig_mask)
        if mask is None:
            continue
        try:
            sys.sched_setaffinity(tid, mask)
        except ProcessGone:
            continue


def follow_new_threads(c: ProcessClient, proc: str, sys: ModuleType = default_sys) -> int:
    """Give threads born since the last tick the home's CPUs (``c.tids`` is this tick's
    listing).  New threads inherit their creator's mask, so this is mostly a no-op
    guarantee, but a thread created before the home was set and missed keeps its own."""
    if c.set_cpus is None:
        return 0
    new = [t for t in c.tids if t not in c.tids_set]
    if not new:
        return 0
    c.verify(proc)
    n = 0
    for tid in new:
        try:
            sys.sched_setaffinity(tid, c.set_cpus)
        except ProcessGone:
            continue
        c.tids_set.add(tid)
        n += 1
    return n


def restore_process(c: ProcessClient, proc: str, sys: ModuleType = default_sys) -> int:
    """Put every thread's mask back; threads born later get the main thread's original."""
    if c.set_cpus is None or c.orig_mask is None:
        return 0
    c.verify(proc)
    main = sys.sched_getaffinity(c.main_tid)
    if not main or not main <= c.set_cpus:
        return 0                     # someone else re-bound it since: theirs stands
    n = 0
    for tid in c.list_tids(proc):
        try:
            sys.sched_setaffinity(tid, c.orig_masks.get(tid, c.orig_mask))
        except ProcessGone:
            continue
        n += 1
    c.set_cpus = None
    c.tids_set.clear()
    return n


def capture_cgroup_original(c: CgroupClient) -> None:
    """Keep the cgroup's ``cpuset.cpus`` text before homenode's first write."""
    if c.uses_cpuset and c.orig_cpus_text is None:
        c.orig_cpus_text = cgroup.read_file(c.path, "cpuset.cpus").strip()


def set_cgroup_home(c: CgroupClient, cpus: frozenset[int], proc: str,
                    sys: ModuleType = default_sys) -> int:
    if c.uses_cpuset:
        capture_cgroup_original(c)
        cgroup.write_file(c.path, "cpuset.cpus", format_cpulist(cpus))
        c.set_cpus = cpus
        return 1
    n = 0
    moved: list[tuple[ProcessClient, frozenset[int] | None]] = []
    try:
        for pid in cgroup.member_pids(c.path):
            member = _member(c, pid, proc)
            if member is None:
                continue
            before = member.set_cpus
            try:
                n += set_process_home(member, cpus, proc, sys)
            except ProcessGone:
                c.procs.pop(pid, None)
                continue
            moved.append((member, before))
    except SysError:
        # All members or none, as for one process: the ones moved go back.
        for member, before in moved:
            try:
                if before is not None:
                    set_process_home(member, before, proc, sys)
                else:
                    restore_process(member, proc, sys)
            except SysError:
                continue
        raise
    c.set_cpus = cpus
    return n


def follow_cgroup_members(c: CgroupClient, proc: str, sys: ModuleType = default_sys) -> int:
    """Affinity fallback: processes that joined the cgroup get the home's CPUs."""
    if c.uses_cpuset or c.set_cpus is None:
        return 0
    n = 0
    for pid in c.pids:
        member = _member(c, pid, proc)
        if member is None or member.set_cpus == c.set_cpus:
            continue
        try:
            n += set_process_home(member, c.set_cpus, proc, sys)
        except ProcessGone:
            c.procs.pop(pid, None)
    return n


def restore_cgroup(c: CgroupClient, proc: str, sys: ModuleType = default_sys) -> int:
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
                n += restore_process(member, proc, sys)
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
