"""The one reader and writer of kernel files (/proc, /sys, cgroup v2): the errno
boundary, as in psutil.

Every open, read, write and directory listing of the backend goes through here, passes
the fault-injection seam (homenode.linux.kernel.faults) first, and turns an OSError into
the typed error of homenode.linux.kernel.errors (ENOENT/ESRCH -> ProcessGone, EACCES ->
AccessDenied, ...).  Nothing else in the backend catches a raw errno.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from homenode.linux.kernel import faults
from homenode.linux.kernel.errors import from_oserror

# A record file (stat, status, schedstat) is shorter than this; the kernel returns it in
# one read, so it costs one system call.
SINGLE_READ = 16384
_CHUNK = 1 << 20


def read_bytes(path: str, what: str, single: bool = False) -> bytes:
    """A whole kernel file; errors translated (ENOENT/ESRCH -> ProcessGone, ...).

    ``single``: the file is one record of less than SINGLE_READ bytes (stat, status,
    schedstat), which the kernel returns in one read: one system call fewer."""
    try:
        if faults.plan is not None:
            faults.hit("read", path)
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        raise from_oserror(e, what) from None
    return _read_all(fd, what, single)


def _read_all(fd: int, what: str, single: bool = False) -> bytes:
    """The rest of ``fd``, closing it."""
    try:
        if single:
            return os.read(fd, SINGLE_READ)
        chunks = []
        while True:
            b = os.read(fd, _CHUNK)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    except OSError as e:
        raise from_oserror(e, what) from None
    finally:
        os.close(fd)


def read_text(path: Path | str, what: str = "") -> str:
    """A kernel file as text (invalid UTF-8 replaced)."""
    path = str(path)
    return read_bytes(path, what or f"read {path}").decode("utf-8", "replace")


def read_optional(path: Path | str) -> str | None:
    """A kernel file as text, or None when it does not exist (ENOENT): a sysfs attribute
    a kernel may lack (cpu/isolated, a node's distance).  Other errors are raised."""
    try:
        if faults.plan is not None:
            faults.hit("read", str(path))
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        if e.errno == errno.ENOENT:
            return None
        raise from_oserror(e, f"read {path}") from None
    return _read_all(fd, f"read {path}").decode("utf-8", "replace")


def write_text(path: Path | str, text: str) -> None:
    """One write of ``text`` to a kernel file (a cgroup's cpuset.cpus)."""
    path = str(path)
    try:
        if faults.plan is not None:
            faults.hit("write", path)
        fd = os.open(path, os.O_WRONLY)
    except OSError as e:
        raise from_oserror(e, f"open {path}") from None
    try:
        os.write(fd, text.encode())
    except OSError as e:
        raise from_oserror(e, f"write {path}") from None
    finally:
        os.close(fd)


def probe(path: str, what: str) -> None:
    """Open and close ``path``: the kernel's permission check made at open time (the
    ptrace check on /proc/PID/numa_maps), without reading it."""
    try:
        if faults.plan is not None:
            faults.hit("read", path)
        os.close(os.open(path, os.O_RDONLY))
    except OSError as e:
        raise from_oserror(e, what) from None


def list_names(path: Path | str, what: str = "") -> list[str]:
    """The names in a directory (a /proc task list, /sys/devices/system/node)."""
    try:
        if faults.plan is not None:
            faults.hit("list", str(path))
        return os.listdir(path)
    except OSError as e:
        raise from_oserror(e, what or f"list {path}") from None


def list_optional(path: Path | str) -> list[str] | None:
    """The names in a directory, or None when it does not exist."""
    try:
        if faults.plan is not None:
            faults.hit("list", str(path))
        return os.listdir(path)
    except OSError as e:
        if e.errno == errno.ENOENT:
            return None
        raise from_oserror(e, f"list {path}") from None


def list_dirs(path: Path) -> list[Path]:
    """The subdirectories of ``path``, sorted (a cgroup's children)."""
    try:
        if faults.plan is not None:
            faults.hit("list", str(path))
        return sorted(path / e.name for e in os.scandir(path) if e.is_dir())
    except OSError as e:
        raise from_oserror(e, f"list {path}") from None
