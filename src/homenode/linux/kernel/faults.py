"""Fault injection: the one seam through which tests make the Linux backend fail.

Every place where the backend touches the kernel -- opening and reading a file, listing
a directory, writing a cgroup file, making a system call -- first does::

    if faults.plan is not None:
        faults.hit(op, target)

``plan`` is None unless a test installs one, so in the daemon the seam costs one
module-attribute load and a comparison per call.  A plan is a callable
``(op, target) -> errno or 0``; a non-zero answer makes the call fail *before it has
any effect*, with ``OSError(errno)``, exactly as the kernel would have failed it.

Operations and targets:

- ``"read"``: open and read of a file; target = its path.
- ``"list"``: a directory listing; target = its path.
- ``"write"``: a cgroup file write; target = its path.
- ``"syscall"``: target = ``sched_setaffinity``, ``sched_getaffinity``,
  ``migrate_pages``, ``move_pages(query)`` (where pages are) or ``move_pages(move)``.
- ``"page"``: target = ``move_pages(move)``; a non-zero errno makes every second page of
  the call fail with that per-page status (-errno) instead of moving, as the kernel
  reports pages it could not move (busy, shared, pinned...), while the others move.

``tests/reliability`` lists every call site and the errnos possible at each.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Plan = Callable[[str, str], int]

plan: Plan | None = None


def hit(op: str, target: str) -> None:
    """Raise the planned error for this call, if any (only called while a plan is set)."""
    if plan is None:
        return
    err = plan(op, target)
    if err:
        raise OSError(err, os.strerror(err), target)


def page_errno(target: str) -> int:
    """The per-page status errno planned for this move_pages call (0: none)."""
    return plan("page", target) if plan is not None else 0


@contextmanager
def injected(p: Plan) -> Iterator[None]:
    """Install ``p`` for the duration of a ``with`` block (tests only)."""
    global plan
    previous, plan = plan, p
    try:
        yield
    finally:
        plan = previous
