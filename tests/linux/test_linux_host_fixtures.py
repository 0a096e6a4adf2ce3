"""LinuxHost on fixture /proc, /sys and cgroup trees, in dry-run (nothing to act on).

Nodes are sparse (0, 2, 3): inside the snapshot node 2 is index 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from linux_support import CGROUP, PROC, SYS_SPARSE, StepClock

from homenode.linux import config
from homenode.linux.host import LinuxHost
from homenode.model import MigratePages, Reason, SetHome
from homenode.policy import make_policy

CFG = """
[daemon]
dry_run = true
[processes]
auto = false
cmdline = ['worker']
pids = [300]
"""


def host(clock: StepClock, proc: Path = PROC, text: str = CFG, cg: Path | None = None
         ) -> LinuxHost:
    return LinuxHost(config.parse(text), clock, proc_root=str(proc), sys_root=SYS_SPARSE,
                     cgroup_root=cg, self_pid=999999)


def test_snapshot_of_the_fixture_host(clock):
    snap = host(clock).snapshot()
    ids = [c.id for c in snap.clients]
    assert ids == ["pid:100", "pid:200", "pid:300"]
    vm, worker, pinned = snap.clients
    assert (vm.name, vm.vcpus, vm.mem_bytes) == ("vm1", 2, 4096 << 20)
    assert vm.managed and worker.managed
    # pid 300 has a thread bound to CPUs 4-5 (node 2 = index 1): unmanaged, counted there
    assert not pinned.managed and pinned.cpu_affinity == frozenset({1})
    assert snap.home.tolist() == [-1, -1, 1]
    # pages by node *index*: node 2's pages are in column 1 (numa_maps N2=...)
    assert snap.pages[0].tolist() == [1063, 3076, 0]
    assert snap.pages[1].tolist() == [0, 16384, 0]
    assert snap.topology.node_ids == (0, 2, 3)


def test_cpu_use_and_run_queue_wait(proc_copy, clock):
    h = host(clock, proc_copy)
    h.snapshot()
    # one second later the worker used 50 more ticks (0.5 s) and waited 0.25 s more
    stat = proc_copy / "200" / "stat"
    stat.write_text(stat.read_text().replace(" 50 0 0 0 20", " 100 0 0 0 20"))
    (proc_copy / "200/task/200/schedstat").write_text("1500000000 250000000 43\n")
    clock.t = 1.0
    snap = h.snapshot()
    i = snap.index_of("pid:200")
    assert snap.received[i] == pytest.approx(0.5)
    assert snap.demand[i] == pytest.approx(0.75)


def test_policy_places_then_dry_run_keeps_imagined_home(clock):
    h = host(clock)
    pol = make_policy("esxi", config.parse(CFG).settings)
    snap = h.snapshot()
    d = pol.decide(snap)
    homes = {a.client: a for a in d.actions if isinstance(a, SetHome)}
    assert set(homes) == {"pid:100", "pid:200"}           # the unmanaged one is not placed
    assert all(a.reason is Reason.INITIAL for a in homes.values())
    results = h.apply(d.actions)
    assert all(r.ok and r.note == "dry-run" for r in results)
    clock.t = 2.0
    snap2 = h.snapshot()
    for cid, a in homes.items():
        assert snap2.home[snap2.index_of(cid)] == a.dst
        # nothing placed again
    assert not any(isinstance(a, SetHome) and a.reason is Reason.INITIAL
                   for a in pol.decide(snap2).actions)


def test_reused_pid_drops_the_client_and_is_never_acted_on(proc_copy, clock):
    h = host(clock, proc_copy)
    snap = h.snapshot()
    assert "pid:200" in [c.id for c in snap.clients]
    # pid 200 exits; a new process gets the same PID (another start time)
    stat = proc_copy / "200" / "stat"
    stat.write_text(stat.read_text().replace(" 6000 ", " 9000 "))
    (proc_copy / "200" / "cmdline").write_text("/bin/unrelated\0")
    clock.t = 1.0
    results = h.apply([SetHome("pid:200", -1, 1, Reason.INITIAL)])
    assert not results[0].ok                      # identity checked before acting
    snap2 = h.snapshot()
    assert "pid:200" not in [c.id for c in snap2.clients]
    assert h.apply([SetHome("pid:200", -1, 1, Reason.INITIAL)])[0].note == "no such client"


def test_vanished_process_is_dropped_and_the_tick_goes_on(proc_copy, clock):
    import shutil
    h = host(clock, proc_copy)
    h.snapshot()
    shutil.rmtree(proc_copy / "200")
    clock.t = 1.0
    snap = h.snapshot()
    assert [c.id for c in snap.clients] == ["pid:100", "pid:300"]
    assert h.stats.dropped == 1


def test_cpu_hotplug_replaces_the_home_cpus(tmp_path, clock):
    import shutil
    sys_root = tmp_path / "sys"
    shutil.copytree(SYS_SPARSE, sys_root)
    h = LinuxHost(config.parse(CFG), clock, proc_root=str(PROC), sys_root=sys_root,
                  self_pid=999999)
    snap = h.snapshot()
    h.apply([SetHome("pid:200", -1, 1, Reason.INITIAL)])
    # node 2 loses all its CPUs: the client is unplaced, to be placed again
    (sys_root / "devices/system/node/node2/cpulist").write_text("\n")
    clock.t = 1.0
    snap = h.snapshot()
    assert snap.topology.cpus[1] == ()
    assert snap.home[snap.index_of("pid:200")] == -1


def test_migrate_pages_in_dry_run_moves_nothing(clock):
    h = host(clock)
    h.snapshot()
    h.apply([SetHome("pid:200", -1, 0, Reason.INITIAL)])
    r = h.apply([MigratePages("pid:200", 1, 0, 1000)])[0]
    assert r.ok and r.moved == 0 and h.stats.pages_moved == 0


def test_cgroup_clients(clock):
    text = CFG.replace("cmdline = ['worker']\npids = [300]",
                       "vms = false") + "[cgroups]\nparents = ['machine.slice']\n"
    h = host(clock, text=text, cg=CGROUP)
    snap = h.snapshot()
    ids = [c.id for c in snap.clients]
    assert ids == ["cg:machine.slice/machine-qemu\\x2d1\\x2dvm1.scope",
                   "cg:machine.slice/machine-qemu\\x2d2\\x2dpinned.scope"]
    vm, pinned = snap.clients
    # vCPUs from its "CPU n/KVM" threads (pid 100 is in its emulator group), shares from
    # cpu.weight 200 (2 x 1000 per vCPU), limit from cpu.max 400000/100000
    assert (vm.name, vm.vcpus, vm.shares, vm.limit) == ("vm1", 2, 4000, 4.0)
    assert vm.managed
    # libvirt's vcpu0 group pins CPUs 4-5: unmanaged, counted on node 2 (index 1)
    assert not pinned.managed and snap.home[1] == 1
    # memory per node from memory.numa_stat (anon + shmem), in 4 KiB pages
    assert snap.pages[0].tolist() == [262144, 196608, 0]
    assert np.all(snap.free_pages >= 0)


def test_daemon_once_feeds_extra_recorders(tmp_path):
    from homenode.linux import daemon

    class Keep:
        def __init__(self):
            self.decisions, self.samples = [], []

        def decision(self, snap, decision, applied):
            self.decisions.append((decision, applied))

        def sample(self, snap):
            self.samples.append(snap)

    keep = Keep()
    cfg = config.parse(CFG)
    outcome = daemon.run(cfg, once=True, out=tmp_path / "out", plots=False,
                         proc_root=str(PROC), sys_root=SYS_SPARSE, recorders=[keep])
    assert outcome.ticks == 1 and len(keep.samples) == 1
    (decision, applied), = keep.decisions
    assert {a.client for a in decision.actions} == {"pid:100", "pid:200"}
    assert all(r.ok for r in applied)
    summary = outcome.summary
    assert summary["linux"]["dry_run"] and summary["clients_seen"] == 3
    assert (tmp_path / "out" / "actions.csv").read_text().count("initial") == 2


def test_a_bad_topology_read_keeps_the_last_good_view(tmp_path, clock):
    import shutil
    sys_root = tmp_path / "sys"
    shutil.copytree(SYS_SPARSE, sys_root)
    h = LinuxHost(config.parse(CFG), clock, proc_root=str(PROC), sys_root=sys_root,
                  self_pid=999999)
    first = h.snapshot()
    (sys_root / "devices/system/node/node2/meminfo").write_text("Node 2 MemTotal: ???\n")
    clock.t = 1.0
    snap = h.snapshot()
    assert snap.topology is first.topology and h.stats.errors["topology"] == 1
