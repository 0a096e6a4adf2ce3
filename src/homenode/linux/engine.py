"""The migration engine: page grants copied on worker threads, off the control loop.

The loop's policy grants a client a page budget per tick (policy/pacing.py); with the
engine, ``apply()`` only hands the grant over (:func:`submit`) and returns, and the next
``snapshot()`` reads what was copied since (:func:`absorb`).  The loop never waits on a
copy, so a tick takes as long as its reads and decisions, whatever is being copied.

* One job per (client, source node, destination node).  Jobs take turns on
  ``page_mig_copiers`` threads, one slice (``page_mig_slice`` pages) at a time, so copies
  run in parallel across clients and (source, destination) pairs.  move_pages(2) is
  called through ctypes, which releases the GIL for the call: the copies of several
  threads overlap in the kernel (docs/engine.md has the measurements that chose threads).
* ``page_mig_node_bandwidth`` pages/s per destination node, all jobs together: a
  virtual-time limiter (each slice books its pages, the next slice to that node starts
  when the booking ends; pages that were not there are given back).
* A grant for a job still running adds to its budget, at most one more grant's worth
  (a slow copy must not build a backlog that later bursts past the configured pace).
* Stops: a client gone, unmanaged or given another home, a grant to another destination,
  the daemon stopping -- each ends the job at the end of its current slice.  The
  process is held by a pidfd (homenode.linux.identity) for the whole job and checked
  before every move_pages: a reused PID is never acted on.
* Accounting: every slice's moved and failed pages (also those of a slice cut short by
  an error or the process's exit) are counted once, and absorbed into the client's pages
  per node, the host's totals and the action log's figures at the next snapshot.

Errors are reported at the next snapshot and sorted by the host like those of a
synchronous move: not permitted -> unmanaged, anything else -> logged once, back-off.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from homenode.linux import migrate
from homenode.linux.actions_io import Books, HostStats
from homenode.linux.clients import ProcessClient
from homenode.linux.kernel import numa_syscalls as default_sys
from homenode.linux.kernel.errors import AccessDenied, SysError
from homenode.linux.kernel.identity import Pinned

if TYPE_CHECKING:
    from homenode.model import Topology
    from homenode.settings import Settings

log = logging.getLogger("homenode.linux")
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


class Engine:
    def __init__(self, copiers: int, node_bandwidth: float, slice_pages: int,
                 proc: str = "/proc", sys: ModuleType = default_sys,
                 clock: Callable[[], float] = time.monotonic, on_dst: bool = False):
        self.copiers = max(1, copiers)
        self.on_dst = on_dst
        self.node_bandwidth = node_bandwidth
        self.slice_pages = max(1, slice_pages)
        self.proc = proc
        self.sys = sys
        self.clock = clock
        self._cv = threading.Condition()
        self._jobs: dict[JobKey, Job] = {}
        self._queue: deque[Job] = deque()
        self._limiters: dict[int, Limiter] = {}
        self._cursors: dict[tuple[tuple[int, int], int], int] = {}
        self._threads: list[threading.Thread] = []
        self._closed = False
        self.busy_s = 0.0           # copier time spent in slices (for the summary)

    @classmethod
    def from_settings(cls, s: Settings, proc: str = "/proc",
                      sys: ModuleType = default_sys) -> Engine | None:
        if s.page_mig_copiers <= 0:
            return None
        return cls(s.page_mig_copiers, s.page_mig_node_bandwidth, s.page_mig_slice, proc, sys,
                   on_dst=s.page_mig_copier_on_dst)

    # --- the loop's side -------------------------------------------------------------

    def grant(self, key: tuple[int, int], src: int, dst: int, pages: int, *,
              page_kb: dict[int, int] | None = None, starts: set[int] | None = None,
              ranges: tuple[tuple[int, int], ...] | None = None,
              cpus: frozenset[int] = frozenset()) -> None:
        if pages <= 0:
            return
        with self._cv:
            if self._closed:
                return
            for k, j in self._jobs.items():
                if k[0] == key and k[2] != dst:
                    j.stop = True               # the policy changed its mind
            job = self._jobs.get((key, src, dst))
            if job is not None and not job.done and not job.stop:
                job.budget = min(job.budget + pages, 2 * pages)
                job.page_kb, job.starts = page_kb or {}, starts
                return
            if job is not None and not job.done:
                return      # stopping: its last progress is collected first
            job = Job(key, src, dst, pages, self._cursors.get((key, src), 0),
                      page_kb or {}, starts, ranges, cpus)
            self._jobs[(key, src, dst)] = job
            self._queue.append(job)
            self._start_threads()
            self._cv.notify()

    def stop_client(self, key: tuple[int, int], keep_dst: int | None = None) -> None:
        """Stop the client's jobs (except those to ``keep_dst``) at their next slice."""
        with self._cv:
            for k, j in self._jobs.items():
                if k[0] == key and k[2] != keep_dst:
                    j.stop = True

    def active(self) -> list[JobKey]:
        with self._cv:
            return [k for k, j in self._jobs.items() if not j.done and not j.stop]

    def collect(self) -> list[Progress]:
        """Every job's progress since the last call; finished jobs are forgotten."""
        out = []
        with self._cv:
            for k, j in list(self._jobs.items()):
                dm, df = j.moved - j.reported_moved, j.failed - j.reported_failed
                if dm or df or j.done:
                    out.append(Progress(j.key, j.src, j.dst, dm, df, j.done, j.exhausted,
                                        j.gone, j.error if j.done else None))
                    j.reported_moved, j.reported_failed = j.moved, j.failed
                if j.done:
                    del self._jobs[k]
                    if not j.gone:
                        self._cursors[(j.key, j.src)] = 0 if j.exhausted else j.cursor
                    else:
                        self._cursors.pop((j.key, j.src), None)
        return out

    def idle(self) -> bool:
        with self._cv:
            return all(j.done for j in self._jobs.values())

    def wait_idle(self, timeout: float) -> bool:
        """For tests and ``--once``: wait until every job is done."""
        deadline = self.clock() + timeout
        with self._cv:
            while not all(j.done for j in self._jobs.values()):
                left = deadline - self.clock()
                if left <= 0:
                    return False
                self._cv.wait(min(left, 0.05))
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Stop every job at its next slice and end the copier threads."""
        with self._cv:
            self._closed = True
            for j in self._jobs.values():
                j.stop = True
            self._cv.notify_all()
        for t in self._threads:
            t.join(timeout)

    # --- the copiers -----------------------------------------------------------------

    def _start_threads(self) -> None:
        while len(self._threads) < min(self.copiers, max(1, len(self._queue))):
            t = threading.Thread(target=self._work, name=f"homenode-copier-{len(self._threads)}",
                                 daemon=True)
            self._threads.append(t)
            t.start()

    def _work(self) -> None:
        pinned: frozenset[int] = frozenset()
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if not self._queue:
                    return
                job = self._queue.popleft()
                if job.stop:
                    self._finish(job)
                    continue
                n = min(job.budget, self.slice_pages)
            if self.on_dst and job.cpus and job.cpus != pinned:
                pinned = self._pin(job.cpus)
            t0 = time.monotonic()
            self._slice(job, n)
            with self._cv:
                self.busy_s += time.monotonic() - t0
                if job.stop or job.gone or job.error is not None or job.exhausted or \
                        job.budget <= 0:
                    self._finish(job)
                else:
                    self._queue.append(job)
                    self._cv.notify()

    @staticmethod
    def _pin(cpus: frozenset[int]) -> frozenset[int]:
        """This copier thread onto ``cpus`` (0 = the calling thread, not the daemon)."""
        try:
            os.sched_setaffinity(0, cpus)
        except OSError as e:                # CPUs gone since the grant: copy anywhere
            log.debug("migration engine: cannot run on CPUs %s: %s", sorted(cpus), e)
            return frozenset()
        return cpus

    def _finish(self, job: Job) -> None:
        """Called under the lock."""
        if job.pin is not None:
            job.pin.close()
            job.pin = None
        job.done = True
        self._cv.notify_all()

    def _limiter(self, node: int) -> Limiter:
        with self._cv:
            lim = self._limiters.get(node)
            if lim is None:
                lim = self._limiters[node] = Limiter(self.node_bandwidth)
            return lim

    def _slice(self, job: Job, n: int) -> None:
        """One slice of ``job``: up to ``n`` pages, outside the lock."""
        lim = self._limiter(job.dst)
        wait = lim.book(n)
        if wait > 0:
            with self._cv:
                self._cv.wait_for(lambda: job.stop or self._closed, wait)
                if job.stop or self._closed:
                    job.stop = True
                    lim.refund(n)
                    return
        out = migrate.Moved(cursor=job.cursor)
        try:
            if job.pin is None:
                job.pin = Pinned(self.proc, job.key[0], job.key[1])
            maps = migrate.movable_mappings(self.proc, job.key[0], job.starts, job.ranges)
            if maps:
                migrate.scan_and_move(out, maps, job.key[0], job.src, job.dst, n,
                                      job.cursor, job.page_kb, self.sys, job.pin.check)
            else:
                out.wrapped = True
        except SysError as e:
            job.gone = e.gone           # exited -- or one call said so (checked later)
            job.error = e
        except Exception as e:      # a bug must not kill the copier thread
            log.exception("migration engine: internal error on pid %d", job.key[0])
            job.error = SysError(0, f"internal error: {e}")
        lim.refund(n - out.moved)
        with self._cv:
            job.slices += 1
            job.moved += out.moved
            job.failed += out.failed
            job.budget -= max(out.moved + out.failed, 0)
            job.cursor = out.cursor
            # A whole pass that found nothing more on src (a pass that moved some goes
            # round again: pages may remain before where it started).
            job.exhausted = out.wrapped and out.moved == 0 and job.error is None


# --- the host's side (the seam: actions.py hands grants, host.py absorbs progress) ---------

class EngineHost(Protocol):
    """What the seam reads and writes of the Linux host (homenode.linux.host.LinuxHost),
    named here so the engine does not import the host that owns it."""

    engine: Engine | None
    _topology: Topology | None
    stats: HostStats
    procs: dict[object, ProcessClient]
    proc: str
    keeper: Books
    clock: Any

    def warn_once(self, key: str, kind: str, message: str) -> None: ...

    def failed(self, c: Any, key: object, now: float, kind: str, e: Exception) -> None: ...


def submit(host: EngineHost, c: ProcessClient, src: int, dst: int, pages: int,
           now: float) -> None:
    """Hand one MigratePages grant of process client ``c`` to the engine."""
    assert host.engine is not None
    stuck = c.stuck.get(src)
    if stuck is not None and now < stuck[0] and c.pages.get(src, 0) <= stuck[1]:
        return
    topo = host._topology
    cpus = frozenset(topo.cpus[topo.index(dst)]) if topo and dst in topo.node_ids else \
        frozenset()
    host.engine.grant(c.key, src, dst, pages, page_kb=c.page_size_kb(),
                      starts=c.vmas_on(src), ranges=c.mem_ranges, cpus=cpus)


def absorb(host: EngineHost, now: float) -> None:
    """Into the host's bookkeeping: what the copiers did since the last snapshot; and
    stop the copies the policy no longer wants (client gone, unmanaged, re-homed)."""
    engine = host.engine
    if engine is None:
        return
    for p in engine.collect():
        host.stats.pages_moved += p.moved
        host.stats.pages_failed += p.failed
        c = host.procs.get(p.key)
        if c is None:
            continue
        if p.moved:
            c.pages[p.src] = max(c.pages.get(p.src, 0) - p.moved, 0)
            c.pages[p.dst] = c.pages.get(p.dst, 0) + p.moved
            c.stuck.pop(p.src, None)
        if p.error is not None or p.gone:
            c.maps_stale = True
        elif p.done and p.exhausted:
            c.maps_stale = True                 # re-read numa_maps: where is what left?
            c.stuck[p.src] = (now + migrate.STUCK_BACKOFF_S, c.pages.get(p.src, 0))
        if p.gone:
            try:
                c.verify(host.proc)
            except SysError:
                continue                        # exited: the refresh drops it
        if p.error is not None:
            if isinstance(p.error, AccessDenied):
                if c.managed:
                    c.unmanage(f"not permitted: {p.error}")
                    host.keeper.dirty = True
                host.warn_once(c.id, "AccessDenied", f"{c.name} ({c.id}): {p.error}; "
                                                     f"left unmanaged")
            else:
                host.failed(c, c.key, now, type(p.error).__name__, p.error)
    for key, _src, dst in engine.active():
        c = host.procs.get(key)
        if c is None or not c.managed or c.home != dst:
            engine.stop_client(key)


def shutdown(host: EngineHost) -> None:
    """Stop every copy at its next slice and count what was moved (daemon exit)."""
    if host.engine is not None:
        host.engine.close()
        absorb(host, host.clock.now())
