"""The migration engine's units of work: a copy job, its progress, the per-node limiter.

Owned by :mod:`homenode.linux.engine`, which holds every job under its lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from homenode.linux.kernel import procfs
from homenode.linux.kernel.errors import SysError
from homenode.linux.kernel.identity import Pinned

JobKey = tuple[tuple[int, int], int, int]          # (client key, src node, dst node)


@dataclass
class Job:
    """One client's copy from one node to another (owned by the engine's lock)."""

    key: tuple[int, int]        # the client: (pid, start time)
    src: int
    dst: int
    budget: int                 # pages still granted
    cursor: int = 0
    page_kb: dict[int, int] = field(default_factory=dict)
    starts: set[int] | None = None
    ranges: tuple[tuple[int, int], ...] | None = None
    cpus: frozenset[int] = frozenset()      # where to copy (the destination's CPUs)
    moved: int = 0              # totals, and the part already reported
    failed: int = 0
    reported_moved: int = 0
    reported_failed: int = 0
    slices: int = 0
    error: SysError | None = None
    gone: bool = False
    exhausted: bool = False     # a whole pass found nothing more on src
    stop: bool = False
    done: bool = False
    pin: Pinned | None = None
    maps: list[procfs.Mapping] | None = None    # /proc/PID/maps, read once per grant


@dataclass
class Progress:
    """What a job did since the last :meth:`Engine.collect`."""

    key: tuple[int, int]
    src: int
    dst: int
    moved: int
    failed: int
    done: bool
    exhausted: bool
    gone: bool
    error: SysError | None


class Limiter:
    """Pages per second into one node: each slice books its pages on a virtual clock."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.clock = clock
        self.free_at = 0.0
        self.lock = threading.Lock()

    def book(self, pages: int) -> float:
        """Seconds to wait before copying ``pages``."""
        if self.rate <= 0:
            return 0.0
        with self.lock:
            now = self.clock()
            start = max(now, self.free_at)
            self.free_at = start + pages / self.rate
            return start - now

    def refund(self, pages: int) -> None:
        if self.rate > 0 and pages > 0:
            with self.lock:
                self.free_at -= pages / self.rate
