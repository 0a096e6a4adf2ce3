"""Issue 8's scenarios a-e and the side-by-side runs, as (machine, guest module, params).

Host side: these only build parameters; the guest modules run them and
:mod:`homenode_qemu.analysis` turns the samples into figures.  The tests use small
workers (CI time); bench/kernel_compare.py the issue's 400 MiB ones.

A worker that arrives while a balancer runs is never given ``run_cpus``: a worker that set
its own CPU affinity after homenode placed it would undo the placement, and homenode then
rightly treats it as bound by someone else.  ``run_cpus="all"`` only follows
``touch_cpus`` in the workload-first scenarios, before any balancer runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from homenode_qemu import assets
from homenode_qemu.machine import Machine, four_nodes, two_nodes

# homenode's config in the guest (docs/linux.md, "Testing on a multi-node kernel"): workers
# are selected by command line, without thresholds, and ticks are short so convergence is
# measured in seconds.  Only workers tagged "managed" are clients.  New PIDs are read at
# every tick whatever scan_interval says; the re-read of every known process keeps the
# defaults' ratio (scan_interval = 5 x interval): at 0.5 s under TCG it was a quarter of
# each tick's CPU (issue 15's profile), spent on processes that are not clients.
MANAGED_RE = r"hn-worker .*--tag managed"      # also "managed-hog": a bound client
GUEST_DAEMON = {"interval": "0.5s", "scan_interval": "2.5s", "numa_maps_interval": "2s"}
GUEST_SETTINGS: dict[str, Any] = {"rebalance_period": 0.5, "min_residence": 2.0,
                                  "page_mig_delay": 0.5, "page_mig_rate_max": 65536}
# numad: a long-running host's clock (see balancers.Numad)
NUMAD_CLOCK_OFFSET_S = 100000
PACING_RATE = 8192          # pages/s for scenario c: 256 MiB (65536 pages) in ~8 s


def homenode_config(settings: dict[str, Any] | None = None,
                    daemon: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    return {"daemon": {**GUEST_DAEMON, **(daemon or {})},
            "processes": {"auto": False, "vms": False, "cmdline": [MANAGED_RE]},
            "settings": {**GUEST_SETTINGS, **(settings or {})}}


def balancer(kind: str, *, numad_clock: bool = True,
             settings: dict[str, Any] | None = None, nice: int = 0,
             profile: bool = False) -> dict[str, Any]:
    if kind == "homenode":
        return {"kind": "homenode", "config": homenode_config(settings), "nice": nice,
                "profile": profile}
    if kind == "numad":
        path = assets.numad_binary()
        return {"kind": "numad", "binary": str(path) if path else "numad",
                "clock_offset_s": NUMAD_CLOCK_OFFSET_S if numad_clock else 0}
    return {"kind": kind}


@dataclass
class Plan:
    machine: Machine
    module: str
    params: dict[str, Any]
    timeout_s: float


def _group(count: int, mib: int, **kw: Any) -> dict[str, Any]:
    return {"count": count, "mib": mib, "tag": "managed", **kw}


def burst(worker: str, mib: int = 64, duration_s: float = 45) -> Plan:
    """a. 4 workers start at once on 2 nodes under a running homenode."""
    return Plan(two_nodes(mem_per_node_mib=768), "workload", {
        "worker": worker, "balancer": balancer("homenode"), "order": "balancer_first",
        "groups": [_group(4, mib)], "duration_s": duration_s,
        "stop_when_local": True, "local_tags": ["managed"], "balanced_nodes": 2},
        duration_s + 120)


def imbalance(worker: str, kind: str = "homenode", *, nodes: int = 2, mib: int = 64,
              duration_s: float = 45, numad_clock: bool = True,
              settings: dict[str, Any] | None = None, nice: int = 0,
              profile: bool = False) -> Plan:
    """b. numa01-like: every worker first-touched on node 0 (bound there while touching,
    then unbound), one worker per node; then the balancer starts."""
    per_node = max(1024, nodes * mib + 512)
    machine = (two_nodes if nodes == 2 else four_nodes)(
        mem_per_node_mib=per_node, numa_balancing=kind == "autonuma")
    return Plan(machine, "workload", {
        "worker": worker, "balancer": balancer(kind, numad_clock=numad_clock,
                                               settings=settings, nice=nice,
                                               profile=profile),
        "order": "workload_first", "time_numpy": kind == "homenode",
        "groups": [_group(nodes, mib, touch_cpus=machine.node_cpus(0), run_cpus="all")],
        "duration_s": duration_s, "stop_when_local": True, "local_tags": ["managed"],
        "balanced_nodes": machine.nodes},
        duration_s + 150 + 120 * (nodes > 2))


def mixed(worker: str, kind: str = "homenode", *, nodes: int = 2, mib: int = 300,
          small_mib: int = 64, duration_s: float = 60, numad_clock: bool = True,
          settings: dict[str, Any] | None = None, nice: int = 0,
          profile: bool = False) -> Plan:
    """The side-by-side's second workload: one big worker per node, all first-touched on
    node 0 and running before the balancer, and as many small ones arriving 5 s after
    it, unbound (first touch wherever the scheduler runs them).  On 2 nodes: two big
    workers and two small ones."""
    machine = (two_nodes if nodes == 2 else four_nodes)(
        mem_per_node_mib=max(1024, nodes * mib + 512), numa_balancing=kind == "autonuma")
    return Plan(machine, "workload", {
        "worker": worker, "balancer": balancer(kind, numad_clock=numad_clock, nice=nice,
                                               settings=settings, profile=profile),
        "order": "workload_first", "time_numpy": kind == "homenode",
        "groups": [_group(nodes, mib, touch_cpus=machine.node_cpus(0), run_cpus="all"),
                   _group(nodes, small_mib, delay_s=5.0)],
        "duration_s": duration_s, "stop_when_local": True, "local_tags": ["managed"],
        "balanced_nodes": machine.nodes},
        duration_s + 150 + 120 * (nodes > 2))


def pacing(worker: str, mib: int = 256, rate: int = PACING_RATE,
           duration_s: float = 60) -> Plan:
    """c. Under a running homenode, a worker is homed and its memory settles there; then a
    CPU hog bound to that node arrives (a client homenode may not move, whose load counts
    there), so homenode moves the worker's home and must bring all its memory over at
    ``rate`` pages/s."""
    settings = {"page_mig_rate_max": rate}
    return Plan(two_nodes(mem_per_node_mib=max(768, mib + 512)), "workload", {
        "worker": worker, "balancer": balancer("homenode", settings=settings),
        "order": "balancer_first", "sample_s": 0.25,
        "groups": [_group(1, mib, settle=True),
                   {"count": 1, "mib": 4, "tag": "managed-hog", "bind_home_of": 0}],
        "duration_s": duration_s, "stop_when_local": True, "wait_for_move": True,
        "local_tags": ["managed"]},
        duration_s + 120)


def churn(worker: str, rounds: int = 6, seed: int = 8) -> Plan:
    """d. Workers killed mid-migration; their PIDs reused by bystanders at once."""
    config = homenode_config({"page_mig_rate_max": 4096},
                             {"interval": "0.25s", "scan_interval": "0.25s"})
    return Plan(two_nodes(mem_per_node_mib=768), "churn", {
        "worker": worker, "config": config, "rounds": rounds, "per_round": 2, "mib": 32,
        "bystander_mib": 16, "kill_after_s": [0.3, 2.5], "seed": seed,
        "final_timeout_s": 40}, 240)


def socket_local(worker: str, mib: int = 32, duration_s: float = 60) -> Plan:
    """e. 4 nodes in two sockets: two workers first-touched on node 0; balancing needs one
    move, and node 1 (same socket, distance 12) is as good as nodes 2-3 (distance 32)."""
    machine = four_nodes(mem_per_node_mib=max(768, 2 * mib + 512))
    return Plan(machine, "workload", {
        "worker": worker, "balancer": balancer("homenode"), "order": "workload_first",
        "groups": [_group(2, mib, touch_cpus=machine.node_cpus(0), run_cpus="all")],
        "duration_s": duration_s, "stop_when_local": True, "local_tags": ["managed"],
        "balanced_nodes": machine.nodes},
        duration_s + 150)
