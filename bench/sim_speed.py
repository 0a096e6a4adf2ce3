"""Simulated seconds per wall second for each built-in scenario (goal: epyc >= 500).

    python bench/sim_speed.py [--repeat 3] [--policy esxi] [SCENARIO ...]

Runs each scenario in-process without writing files (plots and CSVs are not part of
the simulator's speed) and prints the median and range over the repeats.
"""

from __future__ import annotations

import argparse
import statistics
import time

from rich.console import Console
from rich.table import Table

from homenode.sim import scenario as scenarios
from homenode.simulation import simulate

GOALS = {"epyc": 500.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenarios", nargs="*", default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--policy", default="esxi")
    args = ap.parse_args()
    names = args.scenarios or scenarios.builtin_names()
    t = Table(title=f"simulator speed, policy {args.policy} (simulated s / wall s)")
    for col in ("scenario", "nodes", "clients", "sim s", "median", "min", "max", "goal"):
        t.add_column(col, justify="right" if col not in ("scenario", "goal") else "left")
    for name in names:
        sc = scenarios.load(name)
        speeds = []
        for _ in range(args.repeat):
            w0 = time.perf_counter()
            simulate(sc, args.policy)
            speeds.append(sc.duration / (time.perf_counter() - w0))
        goal = GOALS.get(name)
        med = statistics.median(speeds)
        verdict = "" if goal is None else f">= {goal:g}: {'met' if med >= goal else 'MISSED'}"
        t.add_row(name, str(sc.host.topology.n), str(len(sc.clients)), f"{sc.duration:g}",
                  f"{med:.0f}", f"{min(speeds):.0f}", f"{max(speeds):.0f}", verdict)
    Console().print(t)


if __name__ == "__main__":
    main()
