"""Parsers of /proc/PID/maps and /proc/PID/smaps beyond procfs's own: the shared memory
objects a process maps (automatic affinity groups, homenode.linux.groups) and each
mapping's VmFlags (a guest's memory backing, homenode.linux.guestmem)."""

from __future__ import annotations

from homenode.linux.kernel.files import read_bytes

# Shared mappings that are memory (not files on disk): POSIX shm, memfd, SysV shm, and
# MAP_SHARED|MAP_ANONYMOUS (shown as /dev/zero).
SHM_PATHS = ("/dev/shm/", "/memfd:", "/SYSV", "/dev/zero")


def shared_objects(data: bytes | str, min_size: int) -> dict[tuple[str, int], str]:
    """/proc/PID/maps: the shared memory objects mapped writable and shared, with at
    least ``min_size`` bytes mapped: (device, inode) -> path."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    size: dict[tuple[str, int], int] = {}
    path: dict[tuple[str, int], str] = {}
    for line in data.splitlines():
        f = line.split(None, 5)
        if len(f) < 6 or len(f[1]) < 4 or f[1][1] != "w" or f[1][3] != "s":
            continue
        name = f[5].removesuffix(" (deleted)")
        if not name.startswith(SHM_PATHS):
            continue
        lo, _, hi = f[0].partition("-")
        try:
            key = (f[3], int(f[4]))
            size[key] = size.get(key, 0) + int(hi, 16) - int(lo, 16)
        except ValueError:
            continue
        path[key] = name
    return {k: path[k] for k, n in size.items() if n >= min_size}


def read_shared_objects(proc: str, pid: int, min_size: int) -> dict[tuple[str, int], str]:
    path = f"{proc}/{pid}/maps"
    return shared_objects(read_bytes(path, f"read {path}"), min_size)


def read_vmflags(proc: str, pid: int) -> dict[int, frozenset[str]]:
    path = f"{proc}/{pid}/smaps"
    return parse_vmflags(read_bytes(path, f"read {path}"))


def parse_vmflags(data: bytes | str) -> dict[int, frozenset[str]]:
    """``/proc/PID/smaps``: mapping start -> its ``VmFlags``."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    out: dict[int, frozenset[str]] = {}
    start = None
    for line in data.splitlines():
        if line.startswith("VmFlags:"):
            if start is not None:
                out[start] = frozenset(line[8:].split())
            continue
        head = line.split(" ", 1)[0]
        lo, sep, hi = head.partition("-")
        if sep and all(c in "0123456789abcdef" for c in lo + hi) and lo and hi:
            start = int(lo, 16)
    return out
