"""`homenode place`: the policy's initial placement, remembering recent advice; a VM too
wide for one node is sized into vNUMA slices and placed as the daemon's policy would."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
from linux_support import HOMENODE, SYS_SPARSE

from homenode.linux import advice
from homenode.linux.kernel import sysfs
from homenode.model import Client, Reason, SetHome, Snapshot, Topology
from homenode.policy import make_policy
from homenode.units import GIB

# An EPYC-like host: sockets {0, 1} and {2, 3}, 4 cores and 16 GiB per node.
EPYC = Topology.uniform(4, 4, 16 * GIB, distance=np.array(
    [[10, 12, 32, 32], [12, 10, 32, 32], [32, 32, 10, 12], [32, 32, 12, 10]]))


def place(tmp_path: Path, vcpus: int, mem: int, now: float, window: float = 120.0,
          busy: np.ndarray | None = None) -> advice.Advice:
    state = sysfs.TopologyReader(SYS_SPARSE).read()
    topo = state.topology
    busy = np.zeros(topo.n) if busy is None else busy
    with advice.locked_state(tmp_path / "place.json", window, now) as recent:
        adv = advice.recommend(topo, state.free_pages, busy, recent, vcpus, mem)
        recent.append(advice.Recommendation(now, vcpus, mem, adv.nodes))
    return adv


def test_back_to_back_vms_are_spread(tmp_path: Path):
    # nodes 0 and 2 have 2 cores each, node 3 1 core and no memory; free: 5 GiB and 6 GiB
    # (one vCPU: node 3's single core sizes any wider VM into slices)
    first = place(tmp_path, 1, 2 * GIB, now=1000.0)
    second = place(tmp_path, 1, 2 * GIB, now=1001.0)
    assert first.nodes == (2,)                # most free memory, same CPU headroom
    assert second.nodes == (0,)               # node 2 now holds the first VM
    assert len(json.loads((tmp_path / "place.json").read_text())) == 2


def test_old_recommendations_expire(tmp_path: Path):
    place(tmp_path, 1, 2 * GIB, now=1000.0, window=60.0)
    later = place(tmp_path, 1, 2 * GIB, now=1100.0, window=60.0)
    assert later.nodes == (2,)
    assert len(json.loads((tmp_path / "place.json").read_text())) == 1


def test_busy_node_is_avoided(tmp_path: Path):
    busy = np.array([0.0, 2.0, 0.0])          # node 2's two cores are busy
    assert place(tmp_path, 1, 2 * GIB, now=1000.0, busy=busy).nodes == (0,)


def epyc(vcpus: int, mem: int, recent: list[advice.Recommendation] | None = None
         ) -> advice.Advice:
    free = EPYC.mem_pages.copy()
    return advice.recommend(EPYC, free, np.zeros(4), recent or [], vcpus, mem)


def test_a_wide_vm_is_split_and_its_slices_placed_within_one_socket():
    adv = epyc(8, 8 * GIB)                     # 8 vCPUs > 4 cores: two slices of 4
    assert [(s.vcpus, s.mem_bytes) for s in adv.slices] == [(4, 4 * GIB), (4, 4 * GIB)]
    assert set(adv.nodes) in ({0, 1}, {2, 3})  # SLIT 12 apart, not 32
    assert adv.nodeset in ("0-1", "2-3") and "2 vNUMA slices" in adv.detail
    # memory alone makes a VM wide too: 20 GiB > 90 % of a 16 GiB node
    adv = epyc(2, 20 * GIB)
    assert [(s.vcpus, s.mem_bytes) for s in adv.slices] == [(1, 10 * GIB), (1, 10 * GIB)]
    assert set(adv.nodes) in ({0, 1}, {2, 3})


def test_the_next_wide_vm_takes_the_other_socket():
    first = epyc(8, 8 * GIB)
    second = epyc(8, 8 * GIB, [advice.Recommendation(0.0, 8, 8 * GIB, first.nodes)])
    assert set(first.nodes) | set(second.nodes) == {0, 1, 2, 3}
    assert {frozenset(first.nodes), frozenset(second.nodes)} == {frozenset({0, 1}),
                                                                 frozenset({2, 3})}


def test_the_advice_is_where_the_daemon_would_place_the_same_vm():
    # The daemon sees a QEMU VM with two guest nodes as two slices of one VM (vm=...);
    # placed on the same host, they land where `place` said.
    adv = epyc(8, 8 * GIB)
    vm = [Client(f"pid:7/{k}", vcpus=4, mem_bytes=4 * GIB, vm="pid:7") for k in range(2)]
    snap = Snapshot(0.0, EPYC, tuple(vm), np.full(2, -1), np.zeros(2), np.zeros(2),
                    np.zeros(2), np.zeros((2, 4), np.int64), EPYC.mem_pages.copy())
    d = make_policy("esxi").decide(snap)
    homes = [a.dst for a in d.actions if isinstance(a, SetHome) and a.reason is Reason.INITIAL]
    assert tuple(EPYC.node_ids[h] for h in homes) == tuple(s.node for s in adv.slices)


def test_prefer_ht_sizes_by_threads():
    topo = Topology.uniform(2, 2, 16 * GIB, threads_per_core=2)   # 2 cores, 4 threads
    free = topo.mem_pages.copy()
    assert len(advice.recommend(topo, free, np.zeros(2), [], 4, GIB).slices) == 2
    adv = advice.recommend(topo, free, np.zeros(2), [], 4, GIB, prefer_ht=True)
    assert len(adv.slices) == 1 and adv.slices[0].mem_bytes == GIB
    assert len(advice.recommend(topo, free, np.zeros(2), [], 4, GIB, prefer_ht=True,
                                max_vcpus_per_node=1).slices) == 2


def test_damaged_state_file_is_forgotten(tmp_path: Path):
    (tmp_path / "place.json").write_text("{not json")
    assert place(tmp_path, 1, 2 * GIB, now=1000.0).nodes == (2,)


def test_cli_numad_compat_prints_a_nodeset(tmp_path: Path):
    env_state = tmp_path / "state.json"
    r = subprocess.run([*HOMENODE, "place", "--vcpus", "1", "--memory", "64MiB",
                        "--numad-compat", "--sample", "0", "--state", str(env_state)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    ids = sysfs.read_node_ids("/sys")
    assert r.stdout.strip() in {sysfs.format_cpulist([n]) for n in ids}
    assert len(r.stdout.splitlines()) == 1
    r = subprocess.run([*HOMENODE, "place", "--vcpus", "1", "--memory", "64MiB", "--json",
                        "--sample", "0", "--state", str(env_state)],
                       capture_output=True, text=True, timeout=60)
    out = json.loads(r.stdout)
    assert out["vcpus"] == 1 and out["memory_bytes"] == 64 << 20 and out["nodes"]
    recent = json.loads(env_state.read_text())
    assert len(recent) == 2 and recent[0]["time"] <= time.time()


def test_cli_rejects_bad_arguments(tmp_path: Path):
    r = subprocess.run([*HOMENODE, "place", "--vcpus", "0", "--memory", "1GiB"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip() == \
        "homenode: error: --vcpus = 0: must be at least 1"
    r = subprocess.run([*HOMENODE, "place", "--vcpus", "2", "--memory", "lots"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--memory = 'lots'" in r.stderr
