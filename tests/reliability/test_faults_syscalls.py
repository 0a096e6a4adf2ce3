"""Every system call and write of the Linux backend, failing with every errno possible
there, against real child processes (this machine's two CPUs split into two nodes by a
fixture /sys, as in tests/linux/test_linux_real_kernel.py; /proc and the calls are
real).

For each (site, errno) the action fails without an exception; the threads' CPU masks
are exactly what the host believes (an affinity change is all or nothing); the error is
logged once; retries back off; and once the fault is gone the same action succeeds --
or, for EPERM/EACCES, the client is left unmanaged for good, as documented.
"""

from __future__ import annotations

import errno as E
import logging
import shutil
from pathlib import Path

import pytest
from faults_support import (
    HOST_PROC_READS,
    LISTINGS,
    PROC_READ,
    PROCESS_READS,
    SYSCALLS,
    SYSFS_READS,
    WRITES,
    Plan,
    Recorder,
    case_id,
    cases,
    classify,
)
from linux_support import (
    CGROUP,
    PROC,
    SYS_SPARSE,
    SYS_TWO,
    StepClock,
    child,
    needs_two_cpus,
    thread_masks,
)

from homenode.errors import HomenodeError
from homenode.linux import config, daemon, guard
from homenode.linux.actions_io import KernelIo
from homenode.linux.host import LinuxHost
from homenode.linux.kernel import faults, numa_syscalls
from homenode.linux.kinds import threads
from homenode.model import MigratePages, Reason, SetHome

DENIED = (E.EACCES, E.EPERM)
RETRIES = 16                       # attempts while the fault lasts, 0.5 s apart
MAX_CALLS_PER_ATTEMPT = 8          # calls of one site a single action may make
# back-off: 1 + 2 + 4 s cover the 8 s of retries with about 4 real attempts
MAX_ATTEMPTS = 5
BUDGET = 2000                      # pages per MigratePages


def _host(pid: int, clock: StepClock, extra: str = "") -> LinuxHost:
    cfg = config.parse(f"[processes]\nauto = false\nvms = false\npids = [{pid}]\n{extra}")
    return LinuxHost(cfg, clock, proc_root="/proc", sys_root=SYS_TWO)


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def _consistent(h: LinuxHost, pid: int) -> None:
    """Every thread's mask is what the host believes -- or the host knows it is not and
    repairs it at the client's next refresh."""
    c = next(iter(h.procs.values()), None)
    if c is None:
        return
    ok = threads.settled(c, KernelIo("/proc", numa_syscalls))
    assert ok or c.key in h.unsettled, thread_masks(pid)


# --- affinity -------------------------------------------------------------------------------

AFFINITY = [s for s in SYSCALLS if s.name in ("sched_setaffinity", "sched_getaffinity")]


@needs_two_cpus
@pytest.mark.parametrize("case", cases(AFFINITY), ids=case_id)
def test_affinity_fault(caplog, case):
    site, err = case
    caplog.set_level(logging.WARNING, logger="homenode")
    clock = StepClock()
    with child(threads=3, cpus={0, 1}) as p:
        before = thread_masks(p.pid)
        h = _host(p.pid, clock)
        h.snapshot()
        cid = f"pid:{p.pid}"
        home = SetHome(cid, -1, 1, Reason.INITIAL)
        plan = Plan(site, err)
        with faults.injected(plan):
            r = h.apply([home])[0]
            assert not r.ok and plan.failed > 0, (r, plan)
            assert thread_masks(p.pid) == before          # all or nothing
            _consistent(h, p.pid)
            for k in range(1, RETRIES + 1):
                clock.t = 0.5 * k
                h.snapshot()
                assert not h.apply([home])[0].ok
                _consistent(h, p.pid)
        assert thread_masks(p.pid) == before
        assert plan.failed <= MAX_ATTEMPTS * MAX_CALLS_PER_ATTEMPT, plan.failed
        warnings = _warnings(caplog)
        assert len(warnings) == len(set(warnings)) and len(warnings) <= 2, warnings
        # the fault is gone: the same action succeeds (or, if it was refused, the
        # client stays unmanaged and untouched for good)
        clock.t += guard.BACKOFF_MAX_S + 1
        h.snapshot()
        r = h.apply([home])[0]
        clock.t += 1
        snap = h.snapshot()
        if err in DENIED and site.name == "sched_setaffinity":
            assert not r.ok and not snap.clients[0].managed
            assert thread_masks(p.pid) == before
        else:
            assert r.ok, r
            assert snap.clients[0].managed and snap.home[0] == 1
            assert all(m == {1} for m in thread_masks(p.pid).values())
            h.restore()
            assert thread_masks(p.pid) == before


@needs_two_cpus
def test_a_failed_put_back_is_repaired_at_the_next_refresh():
    """sched_setaffinity fails on the third thread, and the put-back of the first two
    fails as well: the host notices the masks disagree with its bookkeeping and repairs
    them before it next looks at the client (never "re-bound by someone else")."""
    clock = StepClock()
    with child(threads=4, cpus={0, 1}) as p:
        before = thread_masks(p.pid)
        h = _host(p.pid, clock)
        h.snapshot()
        calls = {"n": 0}

        def plan(op: str, target: str) -> int:
            if (op, target) != ("syscall", "sched_setaffinity"):
                return 0
            calls["n"] += 1
            return E.EINVAL if calls["n"] >= 3 else 0       # 2 threads moved, then fail

        with faults.injected(plan):
            assert not h.apply([SetHome(f"pid:{p.pid}", -1, 1, Reason.INITIAL)])[0].ok
        assert thread_masks(p.pid) != before                # the put-back failed too
        assert h.unsettled
        clock.t = guard.BACKOFF_MAX_S + 1
        snap = h.snapshot()
        assert snap.clients[0].managed
        assert thread_masks(p.pid) == before and not h.unsettled


# --- page moves --------------------------------------------------------------------------------

MOVES = [s for s in SYSCALLS if s.name.startswith(("move_pages", "migrate_pages"))]


@pytest.mark.parametrize("case", cases(MOVES), ids=case_id)
def test_page_move_fault(caplog, case):
    """Pages "moved" from node 0 to node 0 (this machine has one real node): the calls
    are real, and so is every failure injected into them."""
    site, err = case
    caplog.set_level(logging.WARNING, logger="homenode")
    clock = StepClock()
    mode = "bulk" if site.name == "migrate_pages" else "paced"
    with child(threads=1, mb=16) as p:
        h = _host(p.pid, clock, f'[daemon]\nmigration = "{mode}"\n')
        h.snapshot()
        cid = f"pid:{p.pid}"
        move = MigratePages(cid, 0, 0, BUDGET)
        plan = Plan(site, err)
        with faults.injected(plan):
            r = h.apply([move])[0]
            assert plan.failed > 0, plan
            if site.op == "page":
                # per-page statuses are no error: half the pages moved, the other half
                # counted as failed (or, asked where they are, not found on node 0)
                assert r.ok and r.moved > 0
                assert h.stats.pages_failed > 0 or "query" in site.name
                return
            assert not r.ok
            for k in range(1, RETRIES + 1):
                clock.t = 0.5 * k
                h.snapshot()
                h.apply([move])
        assert plan.failed <= MAX_ATTEMPTS * 2, plan.failed
        warnings = _warnings(caplog)
        assert len(warnings) == len(set(warnings)) and len(warnings) <= 2, warnings
        clock.t += guard.BACKOFF_MAX_S + 1
        h.snapshot()
        r = h.apply([move])[0]
        if err in DENIED:
            assert not h.procs[next(iter(h.procs))].managed
            return
        assert r.ok, r
        assert mode == "bulk" or r.moved > 0


@pytest.mark.parametrize("err", PROC_READ, ids=E.errorcode.get)
def test_maps_read_fault_during_a_page_move(err):
    """/proc/PID/maps (read to find what to scan) failing: the move fails cleanly, backs
    off, and works once the fault is gone."""
    site = next(s for s in PROCESS_READS if s.name == "proc maps")
    clock = StepClock()
    with child(threads=1, mb=8) as p:
        h = _host(p.pid, clock)
        h.snapshot()
        move = MigratePages(f"pid:{p.pid}", 0, 0, BUDGET)
        plan = Plan(site, err)
        with faults.injected(plan):
            assert not h.apply([move])[0].ok and plan.failed == 1
            clock.t = 0.5
            h.snapshot()
            h.apply([move])
            assert plan.failed == 1                         # backing off
        clock.t += guard.BACKOFF_MAX_S + 1
        h.snapshot()
        r = h.apply([move])[0]
        assert r.ok if err not in DENIED else not next(iter(h.procs.values())).managed


# --- cgroup writes --------------------------------------------------------------------------------

@pytest.mark.parametrize("case", cases(WRITES), ids=case_id)
def test_cpuset_write_fault(tmp_path, caplog, case):
    """A cgroup client's home is its cpuset.cpus (a copy of the fixture tree: the
    write is a real write, to a plain file).  No process client is configured, and only
    home actions are applied: nothing on this machine is touched."""
    site, err = case
    caplog.set_level(logging.WARNING, logger="homenode")
    proc, cg = tmp_path / "proc", tmp_path / "cg"
    shutil.copytree(PROC, proc)
    shutil.copytree(CGROUP, cg)
    cfg = config.parse("[processes]\nauto = false\nvms = false\n"
                       "[cgroups]\nparents = ['machine.slice']\n")
    clock = StepClock()
    h = LinuxHost(cfg, clock, proc_root=str(proc), sys_root=SYS_SPARSE, cgroup_root=cg,
                  self_pid=999999)
    snap = h.snapshot()
    g = next(c for c in h.cgroups.values() if c.managed and c.uses_cpuset)
    path: Path = g.path / "cpuset.cpus"
    original = path.read_text()
    home = SetHome(g.id, -1, 1, Reason.INITIAL)
    plan = Plan(site, err)
    with faults.injected(plan):
        assert not h.apply([home])[0].ok and plan.failed == 1
        assert path.read_text() == original and g.set_cpus is None
        for k in range(1, RETRIES + 1):
            clock.t = 0.5 * k
            h.snapshot()
            h.apply([home])
    assert plan.failed <= MAX_ATTEMPTS
    warnings = _warnings(caplog)
    assert len(warnings) == len(set(warnings)), warnings
    clock.t += guard.BACKOFF_MAX_S + 1
    h.snapshot()
    r = h.apply([home])[0]
    if err in DENIED:
        assert not r.ok and not g.managed and path.read_text() == original
    else:
        cpus = snap.topology.cpus[1]
        assert r.ok and g.set_cpus == frozenset(cpus) and path.read_text() != original


# --- start-up ------------------------------------------------------------------------------------

STARTUP_SITES = [s for s in (*HOST_PROC_READS, *PROCESS_READS, *SYSFS_READS, *LISTINGS)
                 if s.name in ("proc mountinfo", "proc numa_balancing", "proc status",
                               "sysfs node/online", "sysfs node cpulist", "sysfs cpu/online",
                               "sysfs node meminfo", "list /proc")]


@pytest.mark.parametrize("case", cases(STARTUP_SITES), ids=case_id)
def test_startup_fault_is_one_line_or_nothing(case):
    """At start-up (topology, first scan, privilege check, the start log line) a failed
    read either does not matter or stops homenode with one line -- before it changed
    anything -- never with a traceback."""
    site, err = case
    cfg = config.parse("[daemon]\ndry_run = true\nstate_file = 'off'\n"
                       "[processes]\nauto = false\nvms = false\n"
                       "[cgroups]\nparents = ['machine.slice']\n")
    plan = Plan(site, err)
    with faults.injected(plan):
        try:
            out = daemon.run(cfg, once=True, sys_root=SYS_TWO)
        except HomenodeError as e:
            assert "\n" not in str(e) and str(e).startswith(("cannot start", "missing",
                                                              "no ptrace"))
            return
    assert out.ticks == 1


def test_every_syscall_site_is_in_the_catalogue():
    """Every call a real host makes to home, move and restore a real process belongs to
    a catalogued site."""
    rec = Recorder()
    clock = StepClock()
    with child(threads=2, mb=8) as p, faults.injected(rec):
        h = _host(p.pid, clock)
        h.snapshot()
        h.apply([SetHome(f"pid:{p.pid}", -1, 0, Reason.INITIAL),
                 MigratePages(f"pid:{p.pid}", 0, 0, BUDGET)])
        clock.t = 1.0
        h.snapshot()
        h.restore()
    unknown = sorted({(op, t) for op, t in rec.calls if not classify(op, t)})
    assert not unknown, unknown
    reached = {s.name for op, t in rec.calls for s in classify(op, t)}
    assert {"sched_setaffinity", "sched_getaffinity", "move_pages(query)",
            "move_pages(move)", "proc maps"} <= reached, reached
