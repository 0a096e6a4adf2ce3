"""The migration engine (homenode.linux.engine) against real processes on this host.

This machine has one memory node, so pages "move" from node 0 to node 0: every
move_pages call is real (the kernel reports each page on node 0, as it would after a
move), and so are the exits, the pidfds and the accounting.  The QEMU scenarios measure
real copies between nodes."""

from __future__ import annotations

import os
import time

import pytest
from linux_support import SYS_TWO, StepClock, child

from homenode.linux import config
from homenode.linux.copyjob import Limiter
from homenode.linux.engine import Engine, shutdown
from homenode.linux.host import LinuxHost
from homenode.model import MigratePages, Reason, SetHome

PAGES_16M = 16 * 256


def _engine(bandwidth: float = 0.0, slice_pages: int = 256, copiers: int = 2) -> Engine:
    return Engine(copiers, bandwidth, slice_pages)


def _host(pid: int, clock: StepClock, engine: Engine) -> LinuxHost:
    cfg = config.parse(f"[processes]\nauto = false\nvms = false\npids = [{pid}]\n")
    return LinuxHost(cfg, clock, proc_root="/proc", sys_root=SYS_TWO, engine=engine)


def _copying(pid: int, clock: StepClock) -> tuple[LinuxHost, Engine, str]:
    """A host whose engine is 0.3 s into a slow copy (2000 pages/s) of 8000 pages."""
    e = _engine(bandwidth=2000.0, slice_pages=128)
    h = _host(pid, clock, e)
    h.snapshot()
    cid = f"pid:{pid}"
    h.apply([SetHome(cid, -1, 0, Reason.INITIAL)])
    h.apply([MigratePages(cid, 0, 0, 8000)])
    time.sleep(0.3)
    return h, e, cid


def test_a_grant_is_copied_in_slices_and_every_page_is_counted_once():
    e = _engine(slice_pages=256)
    with child(threads=1, mb=16) as p:
        key = (p.pid, _start(p.pid))
        e.grant(key, 0, 0, 2000)
        assert e.wait_idle(30)
        progress = e.collect()
        assert e.collect() == []                       # reported once, then forgotten
    e.close()
    assert len(progress) == 1 and progress[0].done and not progress[0].gone
    # slices of 256: the budget is spent exactly (no huge pages: MADV none, 4 KiB)
    assert progress[0].moved + progress[0].failed == 2000


def test_apply_returns_at_once_and_the_next_snapshot_reads_the_progress():
    clock = StepClock()
    e = _engine(bandwidth=4000.0, slice_pages=256)   # 2000 pages take >= 0.5 s
    with child(threads=1, mb=16) as p:
        h = _host(p.pid, clock, e)
        h.snapshot()
        cid = f"pid:{p.pid}"
        assert h.apply([SetHome(cid, -1, 0, Reason.INITIAL)])[0].ok
        r = h.apply([MigratePages(cid, 0, 0, 2000)])[0]
        assert r.ok and r.note == "queued" and r.moved == 0
        assert e.active()                        # still copying after apply returned
        assert e.wait_idle(30)
        clock.t = 1.0
        h.snapshot()
        assert h.stats.pages_moved + h.stats.pages_failed == 2000
        assert h.stats.pages_moved > 0
        shutdown(h)


def test_a_client_that_exits_mid_copy_stops_its_job_cleanly():
    clock = StepClock()
    with child(threads=1, mb=32) as p:
        h, e, _ = _copying(p.pid, clock)
        p.kill()
        p.wait(10)
    assert e.wait_idle(10)
    clock.t = 1.0
    snap = h.snapshot()
    assert not snap.clients                      # dropped, no error logged for it
    assert 0 < h.stats.pages_moved < 8000
    assert not h.stats.errors
    e.close()


def test_a_reused_pid_is_never_acted_on():
    """A job for (pid, another start time): the pidfd check refuses it, nothing moves."""
    e = _engine()
    with child(threads=1, mb=8) as p:
        e.grant((p.pid, _start(p.pid) + 1), 0, 0, 1000)
        assert e.wait_idle(10)
        (pr,) = e.collect()
    e.close()
    assert pr.gone and pr.moved == 0 and pr.failed == 0


def test_a_new_home_stops_the_copy_within_a_slice():
    clock = StepClock()
    with child(threads=1, mb=32) as p:
        h, e, cid = _copying(p.pid, clock)
        assert h.apply([SetHome(cid, 0, 1, Reason.BALANCE)])[0].ok   # the policy moved it
        clock.t = 0.5
        h.snapshot()                                 # sees the new home: stops the job
        assert e.wait_idle(2)
        clock.t = 1.0
        h.snapshot()
        moved = h.stats.pages_moved + h.stats.pages_failed
        assert 0 < moved < 8000
        shutdown(h)


def test_a_grant_to_another_destination_stops_the_old_job():
    e = _engine(bandwidth=1000.0, slice_pages=64)
    with child(threads=1, mb=8) as p:
        key = (p.pid, _start(p.pid))
        e.grant(key, 0, 0, 5000)
        time.sleep(0.2)
        e.grant(key, 0, 1, 10)          # node 1 (no memory here): the old job stops
        assert e.wait_idle(10)
        done = {(x.src, x.dst): x for x in e.collect()}
    e.close()
    assert done[(0, 0)].done and done[(0, 0)].moved < 5000


def test_repeated_grants_build_no_backlog_beyond_one_more_grant():
    e = _engine(bandwidth=500.0, slice_pages=64)
    with child(threads=1, mb=8) as p:
        key = (p.pid, _start(p.pid))
        for _ in range(10):
            e.grant(key, 0, 0, 300)
        with e._cv:
            (job,) = e._jobs.values()
            assert job.budget <= 600
    e.close()


def test_close_stops_every_job_and_the_threads():
    e = _engine(bandwidth=500.0, slice_pages=64, copiers=3)
    with child(threads=1, mb=8) as p, child(threads=1, mb=8) as q:
        for c in (p, q):
            e.grant((c.pid, _start(c.pid)), 0, 0, 100000)
        time.sleep(0.2)
        e.close(timeout=5)
    assert all(not t.is_alive() for t in e._threads)
    assert all(x.done for x in e.collect())


def test_limiter_books_pages_on_a_virtual_clock():
    t = [0.0]
    lim = Limiter(1000.0, clock=lambda: t[0])
    assert lim.book(500) == 0.0
    assert lim.book(500) == pytest.approx(0.5)
    lim.refund(500)                         # the second slice found nothing to move
    assert lim.book(100) == pytest.approx(0.5)
    assert Limiter(0.0).book(10**9) == 0.0


def _start(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


def test_a_copier_runs_on_the_destination_nodes_cpus():
    """page_mig_copier_on_dst: the copier thread (not the daemon) is moved onto the CPUs
    the grant names."""
    e = Engine(1, 0.0, 256, on_dst=True)
    main_mask = os.sched_getaffinity(0)
    with child(threads=1, mb=8) as p:
        e.grant((p.pid, _start(p.pid)), 0, 0, 500, cpus=frozenset({0}))
        assert e.wait_idle(10)
        (copier,) = e._threads
        mask = os.sched_getaffinity(copier.native_id)
    e.close()
    assert mask == {0} and os.sched_getaffinity(0) == main_mask


@pytest.mark.parametrize("nice", [0, 3])
def test_a_copier_runs_at_the_copier_nice_and_the_daemon_keeps_its_own(nice):
    """page_mig_copier_nice: the copier thread's priority (per TID), not the daemon's.
    (A raise above the caller's needs CAP_SYS_NICE; a lower one never does.)"""
    own = os.getpriority(os.PRIO_PROCESS, 0)
    e = Engine(1, 0.0, 256, nice=own + nice)
    with child(threads=1, mb=8) as p:
        e.grant((p.pid, _start(p.pid)), 0, 0, 500)
        assert e.wait_idle(10)
        (copier,) = e._threads
        prio = os.getpriority(os.PRIO_PROCESS, copier.native_id)
    e.close()
    assert prio == own + nice and os.getpriority(os.PRIO_PROCESS, 0) == own


def test_numa_maps_waits_while_the_engine_copies_and_is_read_after(monkeypatch):
    """The engine's counts stand in for the interval's numa_maps re-read while a copy
    runs (a walk of every page of the client); once it ends, the interval applies again."""
    from homenode.linux.kernel import procfs
    reads: list[int] = []
    real = procfs.read_numa_maps

    def counting(proc, pid, *a, **kw):
        reads.append(pid)
        return real(proc, pid, *a, **kw)

    monkeypatch.setattr(procfs, "read_numa_maps", counting)
    clock = StepClock()
    with child(threads=1, mb=32) as p:
        h, e, _ = _copying(p.pid, clock)
        n0 = len(reads)
        clock.t = 3 * h.cfg.daemon.numa_maps_interval      # long past due
        h.snapshot()
        assert e.active() and len(reads) == n0            # still copying: not re-read
        e.close()                                         # the copy ends
        clock.t += 1.0
        h.snapshot()
        clock.t += h.cfg.daemon.numa_maps_interval
        h.snapshot()
        assert len(reads) > n0
        shutdown(h)
