"""The fault-injection catalogue: every call site of the Linux backend, the errnos the
kernel can return there, and a plan that makes one site fail (homenode.linux.kernel.faults).

A site is (op, a pattern on the call's target).  ``classify`` names the site of any call,
so a test can check that the catalogue is complete: a new read or system call added to
the backend without an entry here fails ``test_every_call_site_is_in_the_catalogue``.
"""

from __future__ import annotations

import errno as E
import re
from dataclasses import dataclass, field

# Errnos by kind of call.  EINTR is left out everywhere: Python retries it (PEP 475).
# open(2)/read(2) of /proc/PID files: gone (ENOENT; ESRCH when the task exits between
# open and read), ptrace/permission checks, I/O and memory failures, fd exhaustion.
PROC_READ = (E.ENOENT, E.ESRCH, E.EACCES, E.EPERM, E.EIO, E.ENOMEM, E.EMFILE, E.ENFILE)
# sysfs attributes: also ENODEV/EINVAL from a device (node, CPU) going away mid-read.
SYS_READ = (E.ENOENT, E.EACCES, E.EIO, E.ENOMEM, E.EMFILE, E.ENFILE, E.ENODEV, E.EINVAL)
# cgroup v2 files: ENODEV once the cgroup is removed while open.
CG_READ = (E.ENOENT, E.ENODEV, E.EACCES, E.EPERM, E.EIO, E.ENOMEM, E.EMFILE, E.ENFILE)
# getdents/opendir: the directory gone, no permission, no memory or descriptors.
LIST = (E.ENOENT, E.EACCES, E.ENOMEM, E.EMFILE, E.ENFILE, E.ENOTDIR)
# write(2) to cpuset.cpus: a bad or empty list, CPUs outside the parent (EINVAL), a
# populated cgroup emptied (ENOSPC), busy, permission, the cgroup removed.
CG_WRITE = (E.EINVAL, E.ENOSPC, E.EBUSY, E.EACCES, E.EPERM, E.ENOENT, E.ENODEV, E.ENOMEM)
# sched_setaffinity(2) and sched_getaffinity(2): their man pages' ERRORS.
SETAFFINITY = (E.EFAULT, E.EINVAL, E.EPERM, E.ESRCH)
GETAFFINITY = (E.EFAULT, E.EINVAL, E.ESRCH)
# move_pages(2) ERRORS (the whole call), and ENOMEM (no memory for its control arrays).
MOVE_PAGES = (E.E2BIG, E.EACCES, E.EFAULT, E.EINVAL, E.ENODEV, E.ENOENT, E.EPERM, E.ESRCH,
              E.ENOMEM)
# move_pages(2) per-page status values for pages that could not be moved.
PAGE_STATUS = (E.EACCES, E.EBUSY, E.EFAULT, E.EIO, E.EINVAL, E.ENOENT, E.ENOMEM, E.EPERM)
# move_pages(2) per-page status when only asking where pages are: not present, or no
# page there (the zero page, an unmapped address).
QUERY_STATUS = (E.ENOENT, E.EFAULT)
# migrate_pages(2) ERRORS, and ENOMEM.
MIGRATE_PAGES = (E.EFAULT, E.EINVAL, E.EPERM, E.ESRCH, E.ENOMEM)


@dataclass(frozen=True)
class Site:
    name: str
    op: str
    pattern: str
    errnos: tuple[int, ...]

    def matches(self, op: str, target: str) -> bool:
        return op == self.op and re.search(self.pattern, target) is not None


def _proc(name: str, pattern: str) -> Site:
    return Site(name, "read", pattern, PROC_READ)


def _sys(name: str, pattern: str) -> Site:
    return Site(name, "read", pattern, SYS_READ)


def _cg(name: str) -> Site:
    return Site(f"cgroup {name}", "read", rf"/{re.escape(name)}$", CG_READ)


# Per-process files (fixture trees and the live /proc alike).
PROCESS_READS = [
    _proc("proc stat", r"/\d+/stat$"),
    _proc("proc status", r"/\d+/status$"),
    _proc("proc cmdline", r"/\d+/cmdline$"),
    _proc("proc cgroup", r"/\d+/cgroup$"),
    _proc("proc maps", r"/\d+/maps$"),
    _proc("proc numa_maps", r"/\d+/numa_maps$"),
    _proc("task stat", r"/task/\d+/stat$"),
    _proc("task status", r"/task/\d+/status$"),
    _proc("task comm", r"/task/\d+/comm$"),
    _proc("task schedstat", r"/task/\d+/schedstat$"),
]
HOST_PROC_READS = [
    _proc("proc mountinfo", r"/self/mountinfo$"),
    _proc("proc numa_balancing", r"/sys/kernel/numa_balancing$"),
]
SYSFS_READS = [
    _sys("sysfs node/online", r"system/node/online$"),
    _sys("sysfs cpu/online", r"system/cpu/online$"),
    _sys("sysfs cpu/isolated", r"system/cpu/isolated$"),
    _sys("sysfs node cpulist", r"node\d+/cpulist$"),
    _sys("sysfs node meminfo", r"node\d+/meminfo$"),
    _sys("sysfs node distance", r"node\d+/distance$"),
    _sys("sysfs cpu siblings", r"topology/(core_cpus_list|thread_siblings_list)$"),
]
CGROUP_READS = [_cg(n) for n in (
    "cgroup.procs", "cpu.stat", "cpu.pressure", "memory.numa_stat", "cpu.weight",
    "cpu.max", "memory.max", "cpuset.cpus", "cpuset.cpus.effective", "cpuset.mems",
    "cpuset.mems.effective")]
LISTINGS = [
    Site("list /proc", "list", r"/proc$", LIST),
    Site("list task", "list", r"/\d+/task$", LIST),
    Site("list sysfs nodes", "list", r"system/node$", LIST),
    Site("list cgroup", "list", r"\.(slice|scope)(/.*)?$|/libvirt(/.*)?$", LIST),
]
WRITES = [Site("write cpuset.cpus", "write", r"/cpuset\.cpus$", CG_WRITE)]
SYSCALLS = [
    Site("sched_setaffinity", "syscall", r"^sched_setaffinity$", SETAFFINITY),
    Site("sched_getaffinity", "syscall", r"^sched_getaffinity$", GETAFFINITY),
    Site("move_pages(query)", "syscall", r"^move_pages\(query\)$", MOVE_PAGES),
    Site("move_pages(move)", "syscall", r"^move_pages\(move\)$", MOVE_PAGES),
    Site("migrate_pages", "syscall", r"^migrate_pages$", MIGRATE_PAGES),
    Site("move_pages page status", "page", r"^move_pages\(move\)$", PAGE_STATUS),
    Site("move_pages query page status", "page", r"^move_pages\(query\)$", QUERY_STATUS),
]
ALL_SITES = [*PROCESS_READS, *HOST_PROC_READS, *SYSFS_READS, *CGROUP_READS, *LISTINGS,
             *WRITES, *SYSCALLS]


def classify(op: str, target: str) -> list[Site]:
    """Every catalogued site this call belongs to (one, for a complete catalogue, except
    for homenode's own status file which is also a process status read)."""
    return [s for s in ALL_SITES if s.matches(op, target)]


def cases(sites: list[Site]) -> list[tuple[Site, int]]:
    return [(s, err) for s in sites for err in s.errnos]


def case_id(case: tuple[Site, int]) -> str:
    site, err = case
    return f"{site.name}-{E.errorcode[err]}"


@dataclass
class Plan:
    """Make every call of one site fail with one errno (while ``on``), optionally only
    for targets containing ``only``; counts the calls it saw and failed."""

    site: Site
    errno: int
    only: str = ""
    on: bool = True
    seen: int = 0
    failed: int = 0
    targets: list[str] = field(default_factory=list)

    def __call__(self, op: str, target: str) -> int:
        if not self.site.matches(op, target) or self.only not in target:
            return 0
        self.seen += 1
        if not self.on:
            return 0
        self.failed += 1
        self.targets.append(target)
        return self.errno


class Recorder:
    """A plan that fails nothing and records every call (for the completeness check)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, op: str, target: str) -> int:
        self.calls.append((op, target))
        return 0
