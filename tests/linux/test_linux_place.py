"""`homenode place`: the policy's initial placement, remembering recent advice."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
from linux_support import HOMENODE, SYS_SPARSE

from homenode.linux import advice, sysfs
from homenode.units import GIB


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
    # nodes 0 and 2 have 2 cores each, node 3 has no memory; free: 5 GiB and 6 GiB
    first = place(tmp_path, 2, 2 * GIB, now=1000.0)
    second = place(tmp_path, 2, 2 * GIB, now=1001.0)
    assert first.nodes == (2,)                # most free memory, same CPU headroom
    assert second.nodes == (0,)               # node 2 now holds the first VM
    assert len(json.loads((tmp_path / "place.json").read_text())) == 2


def test_old_recommendations_expire(tmp_path: Path):
    place(tmp_path, 2, 2 * GIB, now=1000.0, window=60.0)
    later = place(tmp_path, 2, 2 * GIB, now=1100.0, window=60.0)
    assert later.nodes == (2,)
    assert len(json.loads((tmp_path / "place.json").read_text())) == 1


def test_busy_node_is_avoided(tmp_path: Path):
    busy = np.array([0.0, 2.0, 0.0])          # node 2's two cores are busy
    assert place(tmp_path, 2, 2 * GIB, now=1000.0, busy=busy).nodes == (0,)


def test_wide_vm_gets_the_nearest_nodes_and_numad_nodeset(tmp_path: Path):
    adv = place(tmp_path, 6, 1 * GIB, now=1000.0)
    # one node has at most 4 CPUs: add the nearest node that has memory to spare
    assert adv.nodes in ((2, 0), (0, 2))
    assert adv.nodeset == "0,2"


def test_damaged_state_file_is_forgotten(tmp_path: Path):
    (tmp_path / "place.json").write_text("{not json")
    assert place(tmp_path, 2, 2 * GIB, now=1000.0).nodes == (2,)


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
