"""The one module that calls the kernel to *change* something: migrate_pages(2),
move_pages(2) and sched_setaffinity(2) per thread.

glibc wraps neither migrate_pages nor move_pages, so they go through ``syscall(2)`` with
the per-architecture numbers; every failure becomes one of the exception classes of
``homenode.linux.kernel.errors`` (ESRCH -> ProcessGone, EPERM/EACCES -> AccessDenied, ...).
"""

from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Iterable, Sequence

import numpy as np

from homenode.linux.kernel import faults
from homenode.linux.kernel.errors import SysError, from_errno, from_oserror

# asm/unistd_64.h (x86_64) and asm-generic/unistd.h (aarch64), checked on a Debian 12 host.
SYSCALL_NUMBERS: dict[str, dict[str, int]] = {
    "x86_64": {"migrate_pages": 256, "move_pages": 279},
    "aarch64": {"migrate_pages": 238, "move_pages": 239},
}
MPOL_MF_MOVE = 1 << 1        # move pages mapped by this process only
MPOL_MF_MOVE_ALL = 1 << 2    # also shared pages (needs CAP_SYS_NICE)
_ULONG_BITS = 8 * ctypes.sizeof(ctypes.c_ulong)

_libc: ctypes.CDLL | None = None


class Unsupported(SysError):
    """This architecture's syscall numbers are not known."""


def machine() -> str:
    return platform.machine()


def syscall_number(name: str, arch: str | None = None) -> int:
    arch = arch or machine()
    table = SYSCALL_NUMBERS.get(arch)
    if table is None:
        raise Unsupported(0, f"{name}: no syscall number for architecture {arch!r} "
                             f"(known: {', '.join(SYSCALL_NUMBERS)})")
    return table[name]


def _syscall(name: str, *args: object, site: str = "") -> int:
    global _libc
    if faults.plan is not None:
        try:
            faults.hit("syscall", site or name)
        except OSError as e:
            raise from_errno(e.errno or 0, name) from None
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    ret = _libc.syscall(ctypes.c_long(syscall_number(name)), *args)
    if ret < 0:
        raise from_errno(ctypes.get_errno(), name)
    return int(ret)


def nodemask(node_ids: Iterable[int], words: int = 0) -> tuple[ctypes.Array, int]:
    """(mask as an array of at least ``words`` unsigned longs, maxnode) for migrate_pages.

    The kernel's get_nodes() decrements maxnode before use, so callers pass one more
    than the number of bits (libnuma, numad and Intel WCA all do the same)."""
    ids = sorted(set(node_ids))
    if not ids or ids[0] < 0:
        raise ValueError(f"bad node set {ids}")
    words = max(words, ids[-1] // _ULONG_BITS + 1)
    mask = (ctypes.c_ulong * words)()
    for n in ids:
        mask[n // _ULONG_BITS] |= 1 << (n % _ULONG_BITS)
    return mask, words * _ULONG_BITS + 1


def migrate_pages(pid: int, from_nodes: Iterable[int], to_nodes: Iterable[int]) -> int:
    """Move every page of ``pid`` on ``from_nodes`` to ``to_nodes``; returns the number of
    pages that could not be moved (0 = all moved).  Synchronous: the copy happens now."""
    src, dst = sorted(set(from_nodes)), sorted(set(to_nodes))
    words = max(src + dst, default=0) // _ULONG_BITS + 1
    old, maxnode = nodemask(src, words)
    new, _ = nodemask(dst, words)
    return _syscall("migrate_pages", ctypes.c_int(pid), ctypes.c_ulong(maxnode),
                    ctypes.byref(old), ctypes.byref(new))


def move_pages(pid: int, addrs: np.ndarray, node: int | None,
               flags: int = MPOL_MF_MOVE) -> np.ndarray:
    """move_pages(2) for the page-aligned addresses ``addrs`` (uint64).

    ``node=None`` only asks where each page is; otherwise every page is moved to
    ``node``.  Returns the per-page status: a node id, or -errno for that page (-ENOENT:
    not present, -EFAULT: zero page or unmapped, -EACCES: shared, -EBUSY, -ENOMEM).  A
    positive return (pages not migrated, since Linux 4.17) is not an error: the
    statuses say which."""
    addrs = np.ascontiguousarray(addrs, dtype=np.uint64)
    site = "move_pages(query)" if node is None else "move_pages(move)"
    refused = faults.page_errno(site) if faults.plan is not None else 0
    if refused:
        # Injected per-page failures: every second page "could not be moved" (-errno);
        # the others go through the real call.
        status = np.full(addrs.size, -refused, dtype=np.int32)
        status[1::2] = _move_pages(pid, addrs[1::2], node, flags, site)
        return status
    return _move_pages(pid, addrs, node, flags, site)


def _move_pages(pid: int, addrs: np.ndarray, node: int | None, flags: int,
                site: str) -> np.ndarray:
    addrs = np.ascontiguousarray(addrs, dtype=np.uint64)
    count = addrs.size
    status = np.full(count, -1, dtype=np.int32)
    if count == 0:
        return status
    if node is None:
        nodes_arg: object = None
    else:
        nodes = np.full(count, node, dtype=np.int32)
        nodes_arg = nodes.ctypes.data_as(ctypes.c_void_p)
    _syscall("move_pages", ctypes.c_int(pid), ctypes.c_ulong(count),
             addrs.ctypes.data_as(ctypes.c_void_p), nodes_arg,
             status.ctypes.data_as(ctypes.c_void_p), ctypes.c_int(flags), site=site)
    return status


def sched_setaffinity(tid: int, cpus: Sequence[int] | frozenset[int]) -> None:
    """The CPU affinity of one *thread* (a TID; the PID alone sets only the main thread)."""
    try:
        if faults.plan is not None:
            faults.hit("syscall", "sched_setaffinity")
        os.sched_setaffinity(tid, cpus)
    except OSError as e:
        raise from_oserror(e, f"sched_setaffinity({tid})") from None


def sched_getaffinity(tid: int) -> frozenset[int]:
    try:
        if faults.plan is not None:
            faults.hit("syscall", "sched_getaffinity")
        return frozenset(os.sched_getaffinity(tid))
    except OSError as e:
        raise from_oserror(e, f"sched_getaffinity({tid})") from None
