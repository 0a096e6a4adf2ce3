"""What the daemon may do, checked before it starts: one line naming what is missing.

- CAP_SYS_NICE: sched_setaffinity on another user's process, migrate_pages to a node
  outside the target's cpuset, MPOL_MF_MOVE_ALL.  Not needed when every target belongs
  to homenode's own user, nor for a dry run.
- ptrace read access (PTRACE_MODE_READ_REALCREDS): /proc/PID/numa_maps, move_pages and
  migrate_pages.  Checked by opening each target's numa_maps, which the kernel guards
  with that very check at open time.
- Write access to ``cpuset.cpus`` of every managed cgroup that uses one (not for a dry run).
"""

from __future__ import annotations

import os

from homenode.errors import HomenodeError
from homenode.linux.kernel import procfs
from homenode.linux.kernel.errors import AccessDenied, SysError
from homenode.linux.kernel.files import probe

CAP_SYS_PTRACE = 19
CAP_SYS_NICE = 23


class PrivilegeError(HomenodeError):
    """The daemon lacks a privilege it needs; exit status 1."""


def effective_caps() -> int:
    """homenode's own effective capabilities (always from the live /proc)."""
    status = procfs.read_status("/proc", os.getpid())
    return int(status.get("CapEff", "0"), 16)


def has_cap(cap: int) -> bool:
    return bool(effective_caps() >> cap & 1)


def real_uid(proc: str, pid: int) -> int:
    try:
        return int(procfs.read_status(proc, pid).get("Uid", "-1").split()[0])
    except (ValueError, IndexError):
        return -1


def can_read_numa_maps(proc: str, pid: int) -> bool:
    try:
        probe(f"{proc}/{pid}/numa_maps", f"open {proc}/{pid}/numa_maps")
    except AccessDenied:
        return False
    except SysError:
        return True        # gone: nothing to refuse over
    return True


def check(host, dry_run: bool, proc: str = "/proc") -> None:
    """Raise PrivilegeError (one line) if the first scan's targets cannot be managed."""
    nice = has_cap(CAP_SYS_NICE)
    me = os.getuid()
    for c in list(host.procs.values()):
        try:
            uid = real_uid(proc, c.pid)
        except SysError:
            continue
        if not can_read_numa_maps(proc, c.pid):
            raise PrivilegeError(
                f"no ptrace access to pid {c.pid} ({c.name}, uid {uid}): reading its "
                f"numa_maps and moving its pages need CAP_SYS_PTRACE (or homenode running "
                f"as uid {uid})")
        if not dry_run and not nice and uid != me:
            raise PrivilegeError(
                f"missing CAP_SYS_NICE: needed to set the CPU affinity of pid {c.pid} "
                f"({c.name}, uid {uid}) and to migrate its memory; run as root, grant "
                f"CAP_SYS_NICE (see packaging/homenode.service), or use --dry-run")
    if dry_run:
        return
    for g in list(host.cgroups.values()):
        path = g.path / "cpuset.cpus"
        if g.uses_cpuset and not os.access(path, os.W_OK):
            raise PrivilegeError(f"cannot write {path}: managing cgroup {g.rel} needs "
                                 f"write access to its cpuset.cpus")


def describe() -> str:
    """For the start-up log line."""
    try:
        nice = has_cap(CAP_SYS_NICE)
        ptrace = has_cap(CAP_SYS_PTRACE)
    except (SysError, AccessDenied, ValueError):
        return "capabilities unknown"
    return (f"uid {os.getuid()}, CAP_SYS_NICE {'yes' if nice else 'no'}, "
            f"CAP_SYS_PTRACE {'yes' if ptrace else 'no'}")
