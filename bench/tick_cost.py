"""CPU time of one daemon tick at small N: the Linux host's snapshot and the policy's decide.

Issue 15's 4-node guest missed the tick-gap goal because the loop's own tick costs
250-310 ms of CPU under TCG; a tick there is snapshot (discovery, per-client refresh,
numa_maps, topology) plus decide (rebalance evaluation, payoff).  This bench times both
parts on this machine, with no emulator, at the guest's sizes:

* **snapshot**: ``LinuxHost.snapshot()`` (dry run) on the real /proc and /sys, with
  ``--workers`` real Python processes holding touched memory that the config makes clients
  (by command line, as in the guest) among every other process of the host; the guest's
  daemon settings (interval 0.5 s, scan_interval 2.5 s, numa_maps_interval 2 s), a hand-
  moved clock advanced one interval per tick;
* **decide**: the esxi policy's ``decide`` over a simulated run (the simulator's host,
  not timed) of small scenarios: 4 nodes x 1 core with 3-4 spinning workers that start on
  one node (the guest's imbalance), 4 nodes with 12 clients whose demand shifts, and the
  built-in ``burst`` (2 nodes, 16 clients), with the guest's policy settings, one tick
  every 0.5 s.

CPU is ``time.thread_time()`` around each call; a cell's figure is the mean per tick.
With ``--a-src DIR`` the same cells run under another tree's ``src/`` too (a baseline
checkout: ``git archive main | tar -x -C /tmp/hn-a``), interleaved (A, B, then B, A, ...) in
fresh processes, and the table shows each side's median (min-max) over the rounds and
the median of the per-round ratios B/A.  No timed assertion: read the table.

    python bench/tick_cost.py [--a-src /tmp/hn-a/src] [--rounds 5] [--ticks 400]
    python bench/tick_cost.py --profile snapshot|decide     # pyinstrument, one process
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from daemon_overhead import HOLDER_TAG, start_processes  # bench/, this script's folder

HERE = Path(__file__).resolve().parents[1]
# The clients: daemon_overhead's holders (Python processes touching some memory), found
# by the tag in their command line.
TAG = HOLDER_TAG
# As tools/qemu/homenode_qemu/scenarios.py runs homenode in the guest.
GUEST_DAEMON = {"interval": 0.5, "scan_interval": 2.5, "numa_maps_interval": 2.0}
GUEST_SETTINGS = {"rebalance_period": 0.5, "min_residence": 2.0, "page_mig_delay": 0.5,
                  "page_mig_rate_max": 65536}

IMBALANCE4 = """
name = "imbalance4"
description = "the guest's imbalance: 4 nodes x 1 core, {n} spinning workers"
duration = "{dur}s"
seed = 1
[host]
nodes = 4
cores_per_node = 1
memory_per_node = "1GiB"
[[clients]]
name = "w{{i}}"
count = {n}
vcpus = 1
memory = "400MiB"
mem_intensity = 0.8
demand = {{ kind = "constant", cpu = 1.0 }}
"""
SHIFT4 = """
name = "shift4"
description = "4 nodes x 4 cores, 12 clients; the ones on node 0 get busy at 20 s"
duration = "{dur}s"
seed = 1
[host]
nodes = 4
cores_per_node = 4
memory_per_node = "8GiB"
[[clients]]
name = "vm{{i:02d}}"
count = 12
vcpus = 2
memory = "1GiB"
start_every = "100ms"
mem_intensity = 0.6
demand = {{ kind = "constant", cpu = 0.5 }}
[[events]]
at = "20s"
on_node = 0
demand = {{ kind = "constant", cpu = 2.0 }}
"""


# --- the worker side: one variant, one process --------------------------------------------

def time_snapshot(ticks: int) -> dict[str, float]:
    from homenode.linux import config as config_mod
    from homenode.linux.host import LinuxHost
    from homenode.policy import make_policy

    d = GUEST_DAEMON
    cfg = config_mod.parse(
        f"[daemon]\ndry_run = true\nstate_file = 'off'\ninterval = '{d['interval']}s'\n"
        f"scan_interval = '{d['scan_interval']}s'\n"
        f"numa_maps_interval = '{d['numa_maps_interval']}s'\n"
        f"[processes]\nauto = false\nvms = false\ncmdline = ['{TAG}']\n")

    class Clock:
        t = 0.0

        def now(self) -> float:
            return self.t

    clock = Clock()
    host = LinuxHost(cfg, clock)
    host.prime()
    policy = make_policy("esxi", cfg.settings)
    snap_s: list[float] = []
    for _ in range(ticks):
        clock.t += d["interval"]
        t0 = time.thread_time()
        snap = host.snapshot()
        t1 = time.thread_time()
        dec = policy.decide(snap)
        if dec.actions:
            host.apply(dec.actions)
        snap_s.append(t1 - t0)
    return {"snapshot": 1e6 * statistics.fmean(snap_s),
            "clients": float(len(host.procs))}


def time_decide(ticks: int) -> dict[str, float]:
    from homenode.sim.scenario import load, parse
    from homenode.simulation import simulate

    interval = 0.5
    dur = ticks * interval
    out: dict[str, float] = {}
    cells = [("imbalance4 x3", parse(IMBALANCE4.format(n=3, dur=dur), "bench")),
             ("imbalance4 x4", parse(IMBALANCE4.format(n=4, dur=dur), "bench")),
             ("shift4 x12", parse(SHIFT4.format(dur=dur), "bench")),
             ("burst 2x16", load("burst"))]
    from homenode.policy import make_policy

    for name, sc in cells:
        spent: list[float] = []

        def factory(settings: Any, spent: list[float] = spent) -> Any:
            return Timed(make_policy("esxi", settings), spent)

        simulate(sc, "esxi", duration=dur, settings=GUEST_SETTINGS, interval=interval,
                 factory=factory)
        out[name] = 1e6 * statistics.fmean(spent)
    return out


class Timed:
    """The policy, with the thread CPU time of each ``decide`` kept."""

    def __init__(self, policy: Any, spent: list[float]):
        self.policy, self.spent = policy, spent
        self.name = policy.name

    def decide(self, snap: Any) -> Any:
        t0 = time.thread_time()
        d = self.policy.decide(snap)
        self.spent.append(time.thread_time() - t0)
        return d

    def __getattr__(self, name: str) -> Any:
        return getattr(self.policy, name)


def worker(part: str, ticks: int) -> None:
    res = time_snapshot(ticks) if part == "snapshot" else time_decide(ticks)
    print(json.dumps(res))


# --- the driver -------------------------------------------------------------------------

def run_variant(src: Path, part: str, ticks: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    p = subprocess.run([sys.executable, __file__, "--worker", part, "--ticks", str(ticks)],
                       env=env, capture_output=True, text=True, check=False)
    if p.returncode != 0:
        raise SystemExit(f"{src} {part}: {p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def fmt(xs: list[float]) -> str:
    return f"{statistics.median(xs):,.0f} ({min(xs):,.0f}-{max(xs):,.0f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a-src", type=Path, help="baseline tree's src/ (A)")
    ap.add_argument("--b-src", type=Path, default=HERE / "src", help="tree under test (B)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--ticks", type=int, default=400)
    ap.add_argument("--workers", type=int, default=4, help="client processes to start")
    ap.add_argument("--mib", type=int, default=64, help="memory each client touches")
    ap.add_argument("--parts", default="snapshot,decide")
    ap.add_argument("--profile", choices=("snapshot", "decide"))
    ap.add_argument("--worker", choices=("snapshot", "decide"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker(a.worker, a.ticks)
        return 0

    procs = start_processes(a.workers, a.workers, a.mib) if "snapshot" in a.parts or \
        a.profile == "snapshot" else []
    try:
        time.sleep(1.0 + a.mib / 256)           # let the workers touch their memory
        n_proc = len([d for d in os.listdir("/proc") if d.isdigit()])
        if a.profile:
            from pyinstrument import Profiler
            prof = Profiler(interval=0.0005)
            prof.start()
            worker(a.profile, a.ticks)
            prof.stop()
            print(prof.output_text(unicode=False, color=False, show_all=False))
            return 0
        variants = [("A", a.a_src), ("B", a.b_src)] if a.a_src else [("B", a.b_src)]
        rows: dict[str, dict[str, list[float]]] = {}
        clients = 0.0
        for r in range(a.rounds):
            for part in a.parts.split(","):
                # A, B then B, A: neither side always runs first
                for label, src in variants if r % 2 == 0 else variants[::-1]:
                    res = run_variant(src, part, a.ticks)
                    clients = res.pop("clients", clients)
                    for cell, us in res.items():
                        rows.setdefault(f"{part}: {cell}" if part == "decide" else part,
                                        {}).setdefault(label, []).append(us)
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()

    print(f"tick CPU (us per tick, mean over {a.ticks} ticks; median (min-max) of "
          f"{a.rounds} rounds, interleaved); {n_proc} processes on the host, "
          f"{int(clients)} clients, {os.cpu_count()} CPUs")
    head = ["cell", *(f"{lbl} us/tick" for lbl, _ in variants)]
    if a.a_src:
        head.append("B/A (median of rounds)")
    lines = [head]
    for cell, by in rows.items():
        line = [cell, *(fmt(by[lbl]) for lbl, _ in variants)]
        if a.a_src:
            r = [b / x for x, b in zip(by["A"], by["B"], strict=True)]
            line.append(f"{statistics.median(r):.2f} ({min(r):.2f}-{max(r):.2f})")
        lines.append(line)
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    for i, r in enumerate(lines):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return 0


if __name__ == "__main__":
    sys.exit(main())
