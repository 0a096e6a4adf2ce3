"""Calibration against the real kernel: what a QEMU guest measured (compact fixtures made
by ``bench/calibrate.py`` from ``bench/kernel_compare.py --raw``), the simulator scenario
that mirrors each case, and the band the simulator must stay in.

A fixture is one case (workload, nodes, workers, sizes) and, per balancer, what the
guest counted over the run: pages migrated (``pgmigrate_success``), NUMA hinting faults,
PTE updates, task moves between nodes (changes of the node a worker last ran on, from
0.5 s samples: a lower bound), the workers' system time, and the workers' pages per node
over time.  Counts a case did not record are null and not compared; a balancer whose
mirror is known to differ says why in ``known_difference``.  The mirror has the guest's
topology (one vCPU per node), sizes, first touch (a worker bound to node 0 while it
touched is homed there with its memory) and run length; each worker wants one CPU.
Counts and shapes are compared, never TCG times.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from homenode.sim.scenario import Scenario, parse
from homenode.simulation import simulate

POLICY_OF = {"autonuma": "autonuma", "homenode": "esxi", "numad": "numad"}
# (lowest, highest) simulated / measured
BANDS = {"pages_migrated": (0.9, 1.1), "hint_faults": (1 / 1.5, 1.5),
         "task_moves": (0.5, 2.0)}
SMALL_COUNT = 2     # counts this small on both sides are equal for the ratio bands
SETTLE_S = 120.0    # mirror length when the guest's run length was not recorded
# What the kernel's own work costs inside the TCG guest (guest CPU seconds per unit): the
# guest's host parameters, the same for every case (docs/baselines.md, "Calibration")
GUEST_COSTS = {"scan_page": 3.0e-6}


def load_case(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def mirror(case: dict[str, Any], balancer: str) -> Scenario:
    """The simulator scenario of one guest case and balancer."""
    m = case["balancers"][balancer]
    nodes, mem = case["nodes"], case["mem_per_node_mib"]
    clients = []
    rates = m.get("touch_pages_per_s") or [None] * len(case["workers"])
    for i, (w, rate) in enumerate(zip(case["workers"], rates, strict=True)):
        start = float(w.get("start_s", 0.0))
        # a worker first-touched on node 0 was bound there: that is where it starts
        placed = 'start_home = 0\nmemory_on = 0\n' if w.get("first_touch") == 0 else ""
        # how fast the guest's worker touched its pages (TCG speed): its faults' limit
        touch = f"touch_rate = {int(rate * 4096)}\n" if rate else ""
        clients.append(f"""
[[clients]]
name = "w{i}"
vcpus = 1
memory = "{w['mib']}MiB"
start = {start}
{placed}{touch}demand = {{ kind = "constant", cpu = 1.0 }}
""")
    text = f"""
name = "calib-{case['case']}-{balancer}"
duration = {float(m.get('run_s') or SETTLE_S):.1f}
seed = 1
[host]
nodes = {nodes}
cores_per_node = 1
memory_per_node = "{mem}MiB"
[host.costs]
""" + "".join(f"{k} = {v!r}\n" for k, v in GUEST_COSTS.items()) + "".join(clients)
    return parse(text, f"calibration/{case['case']}.toml")


def simulated(case: dict[str, Any], balancer: str) -> dict[str, float]:
    """The counts the mirror gives under the balancer's policy."""
    s = simulate(mirror(case, balancer), POLICY_OF[balancer], plots=False).summary
    work = s["overhead"]["work"]
    return {"pages_migrated": float(s["pages_migrated"]),
            "hint_faults": float(work.get("hint_fault", 0.0)),
            "task_moves": float(s["home_changes"])}


def outside_band(measured: dict[str, Any], sim: dict[str, float]) -> list[str]:
    """Each count of ``sim`` outside its band around ``measured``, as one line."""
    out = []
    for key, (lo, hi) in BANDS.items():
        if measured.get(key) is None:       # not recorded for this case
            continue
        real, got = float(measured[key]), sim[key]
        if real <= SMALL_COUNT and got <= SMALL_COUNT:
            continue
        ratio = got / real if real > 0 else float("inf")
        if not lo <= ratio <= hi:
            out.append(f"{key}: simulated {got:g}, measured {real:g} "
                       f"(ratio {ratio:.2f}, band {lo:.2f}..{hi:.2f})")
    return out
