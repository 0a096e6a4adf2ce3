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

from homenode.model import Decision, MigratePages, Reason, SetHome, Snapshot
from homenode.policy import make_policy
from homenode.settings import Settings
from homenode.sim.costs import Costs, copy_cpu, task_move_cpu, work_cpu
from homenode.sim.scenario import Scenario, parse
from homenode.simulation import simulate

POLICY_OF = {"autonuma": "autonuma", "homenode": "esxi", "numad": "numad"}
# (lowest, highest) simulated / measured: the goal.  "charge" is what the counts
# cost at a real host's prices (``charge``): no policy may be charged less than the
# kernel charged it in the guest, to the pages band's 10 % (the guest's pgmigrate
# counts every process's pages, the mirror only the workers').
BANDS = {"pages_migrated": (0.9, 1.1), "hint_faults": (1 / 1.5, 1.5),
         "task_moves": (0.5, 2.0), "charge": (0.9, float("inf"))}
MIGRATION_CPU_PER_GIB = 0.25    # the simulator's default copy cost (HostSpec)
INTERVAL_S = 0.5    # the mirrors' control-loop period: the guest sampler's
SMALL_COUNT = 2     # counts this small on both sides are equal for the ratio bands
SETTLE_S = 120.0    # mirror length when the guest's run length was not recorded


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
        # a worker starts where it first touched its memory, with its memory there
        node = w.get("first_touch")
        placed = f"start_home = {node}\nmemory_on = {node}\n" if node is not None else ""
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
""" + "".join(clients)
    return parse(text, f"calibration/{case['case']}.toml")


def charge(counts: dict[str, Any]) -> float | None:
    """CPU seconds the counts cost at a real host's prices (``Costs`` defaults): hinting
    faults, PTE updates, page copies and task moves.  None if a count is missing."""
    keys = ("pages_migrated", "hint_faults", "pte_updates", "task_moves")
    if any(counts.get(k) is None for k in keys):
        return None
    c = Costs()
    return (work_cpu("hint_fault", float(counts["hint_faults"]), c)
            + work_cpu("scan_page", float(counts["pte_updates"]), c)
            + copy_cpu(float(counts["pages_migrated"]), MIGRATION_CPU_PER_GIB)
            + task_move_cpu(c, int(counts["task_moves"])))


class Replay:
    """A policy whose clients run where the guest's ran: every ``INTERVAL_S`` each
    worker's home is set to the node the guest's worker last ran on (``ran_on``), and
    the wrapped policy's own home changes, and its page moves towards any other node,
    are dropped.  It shows what the model's memory side does given the guest
    scheduler's task moves (which the model does not reproduce: docs/baselines.md)."""

    def __init__(self, inner: Any, ran_on: list[list[Any]]):
        self.inner, self.ran_on = inner, ran_on
        self.name = inner.name
        if hasattr(inner, "moves_tasks"):
            inner.moves_tasks = False
        bind = getattr(inner, "bind_host_costs", None)
        if bind is not None:
            self.bind_host_costs = bind

    def where(self, t: float) -> str:
        at = ""
        for when, nodes in self.ran_on:
            if when > t + 1e-9:
                break
            at = nodes
        return at

    def decide(self, snap: Snapshot) -> Decision:
        d = self.inner.decide(snap)
        nodes = self.where(snap.time)
        want = {f"w{i}": int(n) for i, n in enumerate(nodes) if n != "-"}
        home = {c.id: int(snap.home[i]) for i, c in enumerate(snap.clients)}
        target = {c: want.get(c, h) for c, h in home.items()}
        keep = []
        for a in d.actions:
            if isinstance(a, SetHome) and a.client in want and a.src >= 0:
                continue
            if isinstance(a, MigratePages) and a.dst != target.get(a.client, a.dst):
                continue
            keep.append(a)
        for c, n in want.items():
            if c in home and home[c] >= 0 and home[c] != n:
                keep.append(SetHome(c, home[c], n, Reason.BALANCE, 0.0,
                                    "the guest's scheduler ran it there"))
        d.actions = keep
        return d


def simulated(case: dict[str, Any], balancer: str, replay: bool = False) -> dict[str, float]:
    """The counts the mirror gives under the balancer's policy, and their charge; with
    ``replay``, its clients run where the guest's ran (``Replay``)."""
    name = POLICY_OF[balancer]
    ran_on = case["balancers"][balancer].get("ran_on")
    factory = None
    if replay and ran_on:
        def factory(cfg: Settings) -> Replay:
            return Replay(make_policy(name, cfg), ran_on)
    s = simulate(mirror(case, balancer), name, plots=False, interval=INTERVAL_S,
                 factory=factory).summary
    work = s["overhead"]["work"]
    out = {"pages_migrated": float(s["pages_migrated"]),
           "hint_faults": float(work.get("hint_fault", 0.0)),
           "pte_updates": float(work.get("scan_page", 0.0)),
           "task_moves": float(s["home_changes"])}
    out["charge"] = charge(out)
    return out


def measured(m: dict[str, Any]) -> dict[str, float | None]:
    """A fixture balancer's counts (None where not recorded), with their charge."""
    out = {k: m.get(k) for k in ("pages_migrated", "hint_faults", "pte_updates",
                                 "task_moves")}
    out["charge"] = charge(out)
    return out


def band(m: dict[str, Any], key: str) -> tuple[float, float, str]:
    """The band a count must stay in: the goal's, or the looser one the fixture
    documents (``out_of_band``: {key: {"band": [lo, hi], "cause": ...}}) with its cause."""
    doc = (m.get("out_of_band") or {}).get(key)
    if doc:
        lo, hi = doc["band"]
        return float(lo), float("inf") if hi is None else float(hi), doc["cause"]
    lo, hi = BANDS[key]
    return lo, hi, ""


def ratio(real: float | None, got: float | None, small: float = SMALL_COUNT) -> float | None:
    """simulated / measured; 1 when both are at most ``small``; None when not recorded."""
    if real is None or got is None:
        return None
    if real <= small and got <= small:
        return 1.0
    return got / real if real > 0 else float("inf")


def outside_band(m: dict[str, Any], sim: dict[str, float], goal: bool = False) -> list[str]:
    """Each count of ``sim`` outside its band (the goal's with ``goal``, else the
    fixture's own where it documents one) around the fixture's, as one line."""
    real = measured(m)
    out = []
    for key in BANDS:
        r = ratio(real[key], sim[key], 0.0 if key == "charge" else SMALL_COUNT)
        if r is None:
            continue
        lo, hi = BANDS[key] if goal else band(m, key)[:2]
        if not lo <= r <= hi:
            out.append(f"{key}: simulated {sim[key]:g}, measured {real[key]:g} "
                       f"(ratio {r:.2f}, band {lo:.2f}..{hi:.2f})")
    return out
