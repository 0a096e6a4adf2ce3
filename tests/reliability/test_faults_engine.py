"""Fault injection into the migration engine's copies (homenode.linux.engine): every
move_pages site and the maps read, failing with every errno possible there, on the
engine's copier threads, against a real child process (pages "moved" from node 0 to
node 0: this machine has one memory node; the calls are real).

As for a synchronous move (test_faults_syscalls.py): apply() never fails because of a
copy; the error is reported at the next snapshot, logged once, the client backs off;
the pages moved before the failing call are counted; once the fault is gone the copy
works -- or, for EPERM/EACCES, the client is left unmanaged for good."""

from __future__ import annotations

import errno as E
import logging

import numpy as np
import pytest
from faults_support import PROC_READ, PROCESS_READS, SYSCALLS, Plan, case_id, cases
from linux_support import SYS_TWO, StepClock, child

from homenode.linux import config, guard
from homenode.linux.engine import Engine, shutdown
from homenode.linux.host import LinuxHost
from homenode.linux.kernel import faults, numa_syscalls
from homenode.model import MigratePages

DENIED = (E.EACCES, E.EPERM)
RETRIES = 16                       # ticks while the fault lasts, 0.5 s apart
MAX_ATTEMPTS = 5                   # back-off: 1 + 2 + 4 s cover the 8 s of retries
BUDGET = 2000
WAIT_S = 20.0
PAGE_MOVES = [s for s in SYSCALLS if s.name.startswith("move_pages")]


def _host(pid: int, clock: StepClock) -> tuple[LinuxHost, Engine]:
    cfg = config.parse(f"[processes]\nauto = false\nvms = false\npids = [{pid}]\n")
    e = Engine(2, 0.0, 256)
    return LinuxHost(cfg, clock, proc_root="/proc", sys_root=SYS_TWO, engine=e), e


def _tick(h: LinuxHost, e: Engine, move: MigratePages) -> bool:
    """One tick: the grant is queued at once (never an error from apply), copied."""
    h.snapshot()
    r = h.apply([move])[0]
    assert e.wait_idle(WAIT_S)
    return r.ok


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("case", cases(PAGE_MOVES), ids=case_id)
def test_engine_page_move_fault(caplog, case):
    site, err = case
    caplog.set_level(logging.WARNING, logger="homenode")
    clock = StepClock()
    with child(threads=1, mb=16) as p:
        h, e = _host(p.pid, clock)
        h.snapshot()
        move = MigratePages(f"pid:{p.pid}", 0, 0, BUDGET)
        plan = Plan(site, err)
        with faults.injected(plan):
            assert _tick(h, e, move)
            clock.t = 0.5
            h.snapshot()                       # the copy's outcome is read here
            assert plan.failed > 0, plan
            if site.op == "page":
                # per-page statuses are no error: half the pages moved, the others
                # counted as failed (or, asked where they are, not found on node 0)
                assert h.stats.pages_moved > 0 and not h.stats.errors
                assert h.stats.pages_failed > 0 or "query" in site.name
                shutdown(h)
                return
            assert h.stats.pages_moved == 0 and sum(h.stats.errors.values()) >= 1
            for k in range(2, RETRIES + 1):
                clock.t = 0.5 * k
                _tick(h, e, move)
        assert plan.failed <= MAX_ATTEMPTS, plan.failed
        warnings = _warnings(caplog)
        assert len(warnings) == len(set(warnings)) and len(warnings) <= 2, warnings
        clock.t += guard.BACKOFF_MAX_S + 1
        _tick(h, e, move)
        clock.t += 0.5
        snap = h.snapshot()
        if err in DENIED:
            assert not snap.clients[0].managed and h.stats.pages_moved == 0
        else:
            assert snap.clients[0].managed and h.stats.pages_moved > 0
        shutdown(h)


@pytest.mark.parametrize("err", PROC_READ, ids=E.errorcode.get)
def test_engine_maps_read_fault(err):
    """/proc/PID/maps failing on a copier: the job ends, the client backs off, and the
    copy works once the fault is gone."""
    site = next(s for s in PROCESS_READS if s.name == "proc maps")
    clock = StepClock()
    with child(threads=1, mb=8) as p:
        h, e = _host(p.pid, clock)
        h.snapshot()
        move = MigratePages(f"pid:{p.pid}", 0, 0, BUDGET)
        plan = Plan(site, err, only=f"/{p.pid}/")
        with faults.injected(plan):
            _tick(h, e, move)
            clock.t = 0.5
            _tick(h, e, move)                      # reads the error, backs off
            assert plan.failed == 1
        clock.t += guard.BACKOFF_MAX_S + 1
        _tick(h, e, move)
        clock.t += 0.5
        snap = h.snapshot()
        if err in DENIED:
            assert not snap.clients[0].managed
        elif err == E.ENOENT:
            assert not snap.clients or h.stats.pages_moved > 0
        else:
            assert h.stats.pages_moved > 0
        shutdown(h)


class Counting:
    """The real numa_syscalls, counting the pages each move_pages call put on a node."""

    def __init__(self) -> None:
        self.moved = 0

    def move_pages(self, pid, addrs, node, flags=numa_syscalls.MPOL_MF_MOVE):
        status = numa_syscalls.move_pages(pid, addrs, node, flags)
        if node is not None:
            self.moved += int(np.count_nonzero(status == node))
        return status

    def __getattr__(self, name):
        return getattr(numa_syscalls, name)


def test_a_fault_mid_job_keeps_the_pages_already_moved():
    """move_pages fails on the 4th move: the pages of the calls before it are counted,
    exactly, and no more."""
    clock = StepClock()
    with child(threads=1, mb=16) as p:
        counting = Counting()
        cfg = config.parse(f"[processes]\nauto = false\nvms = false\npids = [{p.pid}]\n")
        e = Engine(2, 0.0, 256, sys=counting)  # type: ignore[arg-type]
        h = LinuxHost(cfg, clock, proc_root="/proc", sys_root=SYS_TWO, engine=e)
        h.snapshot()
        calls = {"n": 0}

        def plan(op: str, target: str) -> int:
            if (op, target) != ("syscall", "move_pages(move)"):
                return 0
            calls["n"] += 1
            return E.ENOMEM if calls["n"] == 4 else 0

        with faults.injected(plan):
            _tick(h, e, MigratePages(f"pid:{p.pid}", 0, 0, BUDGET))
            clock.t = 0.5
            h.snapshot()
        assert calls["n"] == 4 and h.stats.errors["OutOfMemory"] == 1
        assert 0 < h.stats.pages_moved == counting.moved < BUDGET
        shutdown(h)
