"""The I/O contexts client kinds run in: ``KernelIo`` (the proc root, and the syscall
module that is the fault-injection seam) and ``ActionIo`` (that, plus the host's books,
for an action).  Actions and client kinds take these instead of the whole LinuxHost."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol


class Books(Protocol):
    dirty: bool          # the state file must be written again


@dataclass
class HostStats:
    pages_moved: int = 0
    pages_failed: int = 0
    errors: Counter = field(default_factory=Counter)      # kind of error -> count
    dropped: int = 0        # clients gone (exited or PID reused)
    adopted: int = 0        # clients whose home a previous daemon set, taken over
    reused_during_action: int = 0   # PID found reused right after an action on it


@dataclass
class KernelIo:
    """What a client kind needs to read and change the kernel: the proc root and the
    syscall module (homenode.linux.kernel.numa_syscalls, or a test's stand-in)."""

    proc: str
    sys: ModuleType


@dataclass
class ActionIo(KernelIo):
    """A kind's context while carrying out an action (adds the host's books)."""

    dry_run: bool
    bulk: bool                                  # daemon.migration = "bulk"
    stats: HostStats
    keeper: Books
    failed: Callable[[Any, object, float, str, Exception], None]
    cooling: Callable[[object, float], float]
    # The migration engine's hand-off (homenode.linux.engine.submit bound to the host), or
    # None when pages are copied inside the tick: (client, src, dst, pages, now).
    queue: Callable[[Any, int, int, int, float], None] | None = None
