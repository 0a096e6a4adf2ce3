"""Errors of the Linux backend, translated from errno at one boundary (as psutil does).

``ParseError`` is the only error a parser raises.  ``SysError`` subclasses say what an
errno means for the daemon: a gone target is dropped, a forbidden one is left alone for
good, a transient failure (busy, short of memory) is retried next tick.
"""

from __future__ import annotations

import errno as _errno


class ParseError(ValueError):
    """A kernel file did not have the expected format."""


class SysError(OSError):
    """A system call or a kernel file read failed; ``what`` says which."""

    transient = False   # worth retrying next tick
    gone = False        # the target no longer exists

    def __init__(self, err: int, what: str):
        super().__init__(err, f"{what}: {_errno.errorcode.get(err, err)} ({_strerror(err)})")
        self.what = what


class ProcessGone(SysError):
    """ESRCH/ENOENT: the process or thread has exited (or its PID was reused)."""

    gone = True


class AccessDenied(SysError):
    """EPERM/EACCES: not allowed (missing capability, ptrace check, cpuset)."""


class Busy(SysError):
    """EBUSY/EAGAIN: pages or the cgroup are busy right now."""

    transient = True


class OutOfMemory(SysError):
    """ENOMEM: the kernel (or the destination node) is short of memory."""

    transient = True


class InvalidArgument(SysError):
    """EINVAL/ENODEV/EFAULT: a node is offline, no CPU of the mask is usable, or the like."""

    transient = True


_BY_ERRNO: dict[int, type[SysError]] = {
    _errno.ESRCH: ProcessGone, _errno.ENOENT: ProcessGone,
    _errno.EPERM: AccessDenied, _errno.EACCES: AccessDenied,
    _errno.EBUSY: Busy, _errno.EAGAIN: Busy,
    _errno.ENOMEM: OutOfMemory,
    _errno.EINVAL: InvalidArgument, _errno.ENODEV: InvalidArgument,
    _errno.EFAULT: InvalidArgument, _errno.E2BIG: InvalidArgument,
}


def from_errno(err: int, what: str) -> SysError:
    """The exception for ``err`` (an unknown errno is a plain, non-transient SysError)."""
    return _BY_ERRNO.get(err, SysError)(err, what)


def from_oserror(e: OSError, what: str) -> SysError:
    return from_errno(e.errno or _errno.EIO, what)


def _strerror(err: int) -> str:
    import os
    try:
        return os.strerror(err)
    except ValueError:
        return "unknown error"
