"""`homenode place` says when a VM does not fit and why (exit 3), speaks MiB/GiB, and
--what-if answers without recording the answer."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
from linux_support import HOMENODE

from homenode.linux import advice
from homenode.linux.kernel import sysfs
from homenode.model import Topology
from homenode.units import GIB, PAGE_SIZE

TOPO = Topology.uniform(2, 2, 8 * GIB)        # 2 nodes of 2 CPUs and 8 GiB


def _advise(vcpus: int, mem: int, free_gib: float = 6.0) -> advice.Advice:
    free = np.full(TOPO.n, int(free_gib * GIB) // PAGE_SIZE)
    return advice.recommend(TOPO, free, np.zeros(TOPO.n), [], vcpus, mem)


def test_a_vm_that_fits_has_no_problems():
    assert _advise(2, 2 * GIB).fits


def test_too_many_vcpus_and_too_much_memory_are_named():
    wide = _advise(64, 2 * GIB)
    assert not wide.fits and any("vCPUs on node" in p and "which has" in p
                                 for p in wide.problems), wide.problems
    big = _advise(2, 100 * GIB)
    assert not big.fits
    assert any("GiB free" in p for p in big.problems) and "pages" not in big.detail


def test_format_size_speaks_mib_and_gib():
    assert advice.format_size(512 * 2**20) == "512 MiB"
    assert advice.format_size(8 * GIB) == "8.0 GiB"


def _place(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    state = tmp_path / "place.json"
    return subprocess.run([*HOMENODE, "place", "--sample", "0", "--state", str(state), *args],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HOMENODE_STATE_DIR": str(tmp_path)})


def test_cli_does_not_fit_exits_3_with_the_reason_and_records_nothing(tmp_path: Path):
    cpus = sum(len(c) for c in sysfs.TopologyReader("/sys").read().topology.cpus)
    r = _place(tmp_path, "--vcpus", str(cpus + 60), "--memory", "2GiB", "--numad-compat")
    assert r.returncode == 3 and r.stdout == ""        # libvirt gets no nodeset
    assert r.stderr.startswith("homenode: does not fit: ") and "vCPUs on node" in r.stderr
    r = _place(tmp_path, "--vcpus", "1", "--memory", "100TiB", "--json")
    assert r.returncode == 3
    doc = json.loads(r.stdout)
    assert doc["fits"] is False and not doc["recorded"] and "free" in doc["problems"][0]
    assert json.loads((tmp_path / "place.json").read_text()) == []


def test_cli_what_if_is_not_recorded_and_memory_is_in_gib(tmp_path: Path):
    r = _place(tmp_path, "--vcpus", "1", "--memory", "64MiB", "--what-if")
    assert r.returncode == 0, r.stderr
    assert "1 vCPUs, 64 MiB" in r.stdout and "what-if" in r.stdout and "pages" not in r.stdout
    assert json.loads((tmp_path / "place.json").read_text()) == []
    r = _place(tmp_path, "--vcpus", "1", "--memory", "64MiB")
    assert r.returncode == 0 and len(json.loads((tmp_path / "place.json").read_text())) == 1
