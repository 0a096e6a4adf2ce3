"""Churn must not grow the daemon: every per-client record is forgotten when the client
goes (the soak measures RSS; these pin each structure)."""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
from linux_support import PROC, SYS_SPARSE, StepClock

from homenode.linux import config, daemon, guard
from homenode.linux.actionlog import ActionLog
from homenode.linux.host import LinuxHost
from homenode.linux.roster import IGNORED_PRUNE_AT
from homenode.model import ActionResult, Client, Decision, MigratePages, Snapshot, Topology


def test_log_once_and_back_off_records_go_with_their_client():
    g = guard.Guard(logging.getLogger("t"), Counter())
    for pid in range(10_000):
        g.warn_once(f"pid:{pid}", "Busy", "busy")
        g.failed((pid, 1), 0.0)
    assert g.sizes() == (10_000, 10_000)
    for pid in range(10_000):
        g.forget((pid, 1), f"pid:{pid}")
    assert g.sizes() == (0, 0)


def test_ignored_clients_of_exited_processes_are_forgotten():
    h = LinuxHost(config.parse("[daemon]\ndry_run = true\n[processes]\nauto = false\n"),
                  StepClock(), proc_root=str(PROC), sys_root=SYS_SPARSE, self_pid=999999)
    h.roster.ignored = {(100, 5000), *((10_000 + i, 1) for i in range(IGNORED_PRUNE_AT)),
                        "cg:x"}
    h.roster.prune_ignored(h.proc)
    assert h.ignored == {(100, 5000), "cg:x"}       # PID 100 exists in the fixture /proc


def test_the_action_log_forgets_clients_that_left():
    log = ActionLog(logger=logging.getLogger("t"))
    topo = Topology.uniform(2, 4.0, 1 << 30)
    for k in range(2_000):                          # 2000 clients, one at a time
        c = Client(f"pid:{k}", vcpus=1)
        snap = Snapshot(0.0, topo, (c,), np.array([0]), np.zeros(1), np.zeros(1),
                        np.zeros(1), np.zeros((1, 2), np.int64), topo.mem_pages)
        a = MigratePages(c.id, 1, 0, 10)
        log.decision(snap, Decision([a], []), [ActionResult(a, True, moved=0)])
    assert len(log._quiet) <= 4 * 1 + 64 + 1


def test_tick_cpu_times_are_bounded():
    t = daemon.TickCpu()
    for i in range(3 * daemon.TICK_CPU_KEPT):
        t.add(float(i % 10))
    assert len(t.recent) == daemon.TICK_CPU_KEPT and t.n == 3 * daemon.TICK_CPU_KEPT
    assert t.stats()["mean"] == 4.5 and t.stats()["max"] == 9.0
