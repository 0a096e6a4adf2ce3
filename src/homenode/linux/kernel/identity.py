"""Holding on to the very process an action is for: a pidfd, checked before every call.

A process is a (PID, start time) pair, but sched_setaffinity and move_pages take a bare
PID or TID.  Checking the start time once before an action leaves the whole action --
many calls, milliseconds to seconds under load -- as a window in which the process may
exit and its PID be handed to a new process.  A pidfd (pidfd_open(2), Linux 5.3) refers
to one process for good: ``pidfd_send_signal(fd, 0)`` fails with ESRCH once that process
has exited, even if its PID has been reused.  So an action opens a pidfd, confirms the
start time (the pidfd then surely refers to the client), and checks the pidfd right
before each call: the window shrinks to the microseconds between a check and its call.

Where pidfds are missing (older kernels, other Pythons), the check re-reads the start
time from /proc/PID/stat instead: the same guarantee, at the cost of a file read.
"""

from __future__ import annotations

import errno
import os
import signal
from types import TracebackType

from homenode.linux.kernel import procfs
from homenode.linux.kernel.errors import ProcessGone

_HAVE_PIDFD = hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal")


class Pinned:
    """``check()`` raises ProcessGone once the process (pid, start) has exited."""

    def __init__(self, proc: str, pid: int, start: int):
        self.proc, self.pid, self.start = proc, pid, start
        self.fd: int | None = None
        if _HAVE_PIDFD and proc == "/proc":        # a pidfd is only for the live /proc
            try:
                self.fd = os.pidfd_open(pid)
            except OSError as e:
                if e.errno == errno.ESRCH:
                    raise ProcessGone(errno.ESRCH, f"pid {pid} has exited") from None
                self.fd = None                      # ENOSYS, EMFILE...: re-read stat
        self._confirm()

    def _confirm(self) -> None:
        st = procfs.read_stat(self.proc, self.pid)
        if st.starttime != self.start:
            self.close()
            raise ProcessGone(errno.ESRCH, f"pid {self.pid} was reused (start time "
                                           f"{st.starttime}, expected {self.start})")

    def check(self) -> None:
        if self.fd is None:
            self._confirm()
            return
        try:
            signal.pidfd_send_signal(self.fd, 0)
        except ProcessLookupError:
            raise ProcessGone(errno.ESRCH, f"pid {self.pid} exited during the action") \
                from None
        except PermissionError:
            pass                    # it exists; homenode may just not signal it

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> Pinned:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
