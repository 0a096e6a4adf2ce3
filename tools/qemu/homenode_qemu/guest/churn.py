"""Scenario "churn": workers killed mid-migration, and their PIDs reused by bystanders.

homenode runs with a config that selects workers tagged ``managed`` by command line.  Each
round starts ``per_round`` managed workers, waits until homenode has homed them, moves their
memory whole to another node (displace.py) so that homenode migrates it back, lets it do so
for a seeded random moment, SIGKILLs them, and at once starts a *bystander* on each freed
PID (ns_last_pid): a worker that homenode's config does not select.  A bystander must never
be touched: its CPU affinity must stay all CPUs and its pages must stay on node 0 for the
rest of the run.

At the end a last pair of managed workers must still be served (≥ 95 % local): the churn
broke nothing.  Parameters: worker, config (homenode's TOML tables), rounds, per_round,
mib, bystander_mib, kill_after_s [lo, hi], seed, final_timeout_s, sample_s.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from homenode_qemu import analysis
from homenode_qemu.guest import balancers, displace, observe, procs
from homenode_qemu.guest.sampler import Sampler

RUNDIR = Path("/tmp/workers")
WATCH_S = 0.1       # how often bystanders are checked while the churn goes on
MID_FRACTION = 0.05


def run(p: dict[str, Any]) -> dict[str, Any]:
    binary = p["worker"]
    rng = random.Random(p.get("seed", 8))
    all_cpus = sorted(c for cs in observe.node_cpus().values() for c in cs)
    node_cpus = {str(n): c for n, c in observe.node_cpus().items()}
    hn = balancers.Homenode(p["config"], Path("/tmp/balancer/homenode"),
                            p.get("ready_pattern", balancers.READY_PATTERN))
    hn.start()
    ready_s = hn.ready()
    bystanders: list[dict[str, Any]] = []
    kills: list[dict[str, Any]] = []
    lo, hi = p.get("kill_after_s", [0.3, 2.0])

    def watch(seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            for b in bystanders:
                _check(b, all_cpus)
            if time.monotonic() >= end:
                return
            time.sleep(WATCH_S)

    for rnd in range(p.get("rounds", 5)):
        ws = [procs.start(binary, p.get("mib", 32), rundir=RUNDIR, tag="managed",
                          wait=False)
              for _ in range(p.get("per_round", 2))]
        procs.wait_ready(ws)
        nodes = {int(n): c for n, c in node_cpus.items()}
        for w in ws:
            home = displace.wait_homed(w.pid, nodes, timeout=10.0)
            if home is not None:
                displace.displace(w.pid, w.addr, (home + 1) % len(nodes), sorted(nodes))
        watch(rng.uniform(lo, hi))
        for w in ws:
            try:
                pages, _ = observe.numa_maps(w.pid, w.addr)
            except OSError:
                pages = {}
            w.proc.kill()
            w.proc.wait()
            kills.append({"round": rnd, "pid": w.pid, "pages": {str(k): v for k, v in
                                                                  pages.items()},
                          "mid_migration": _split(pages)})
            b = procs.start_with_pid(w.pid, binary, p.get("bystander_mib", 16),
                                     rundir=RUNDIR, tag="bystander", touch_node=0)
            if b is not None:
                mine, _ = observe.numa_maps(b.pid, b.addr)
                bystanders.append({"w": b, "pid": b.pid, "pages0": mine.get(0, 0),
                                   "affinity_changes": [], "pages_moved": 0})
    # homenode must still work: a final pair reaches ≥ 95 % local
    final = [procs.start(binary, p.get("mib", 32), rundir=RUNDIR, tag="managed", wait=False)
             for _ in range(2)]
    procs.wait_ready(final)
    sampler = Sampler(p.get("sample_s", 0.5))
    sampler.track(*final)
    sampler.start()
    cpu_node = analysis.cpu_to_node(node_cpus)
    deadline = time.monotonic() + p.get("final_timeout_s", 40.0)
    reached = None
    while time.monotonic() < deadline:
        watch(0.5)
        reached = analysis.time_to_local(list(sampler.samples), cpu_node)
        if reached is not None:
            break
    watch(1.0)
    samples = sampler.stop()
    alive = hn.alive()
    out = hn.stop()
    by = []
    for b in bystanders:
        rep = b["w"].stop()
        by.append({"pid": b["pid"], "affinity_changes": b["affinity_changes"],
                   "pages_moved": b["pages_moved"], "pages0": b["pages0"],
                   "errors": rep.get("errors"), "rc": rep.get("rc")})
    return {"ready_s": ready_s, "node_cpus": node_cpus, "kills": kills, "bystanders": by,
            "reused_pids": len(by), "homenode_alive_at_end": alive,
            "homenode_out": out, "final_time_to_local_s": reached,
            "final_workers": [w.stop() for w in final], "samples": samples}


def _split(pages: dict[int, int]) -> bool:
    """Caught mid-migration: at least MID_FRACTION of its pages on each of two nodes."""
    total = sum(pages.values())
    return total > 0 and sum(v >= MID_FRACTION * total for v in pages.values()) >= 2


def _check(b: dict[str, Any], all_cpus: list[int]) -> None:
    """Record any change homenode made to a bystander: affinity, or pages off node 0."""
    try:
        aff = procs.affinity(b["pid"])
        mine, _ = observe.numa_maps(b["pid"], b["w"].addr)
    except OSError:
        return
    if aff != all_cpus and (not b["affinity_changes"] or b["affinity_changes"][-1] != aff):
        b["affinity_changes"].append(aff)
    b["pages_moved"] = max(b["pages_moved"], b["pages0"] - mine.get(0, 0))
