"""Trace scenarios compressed and in real time, side by side, per policy.

    python bench/realtime.py SCENARIO|FILE [--hours H] [--policies esxi,static,numad,autonuma]
                             [--json FILE]

Runs each policy on the scenario as written (its traces compressed, e.g. one 300 s
sample per 5 simulated s) and on ``sim.traces.real_time`` of it (each sample lasting its
own 300 s), over the first ``--hours`` of trace time (default: the whole scenario), and
prints throughput vs ideal and vs bound, locality, home changes, GiB migrated and the
policies' overhead CPU for both.  Real time simulates ``compression`` times more seconds:
a day of Bitbrains is 86400 simulated s per policy.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from homenode.sim import scenario as scenarios
from homenode.sim import traces
from homenode.simulation import simulate

KEYS = ("throughput_vs_ideal", "throughput_vs_bound", "mean_locality", "home_changes",
        "gib_migrated", "overhead_cpu_s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario")
    ap.add_argument("--hours", type=float, default=None)
    ap.add_argument("--policies", default="esxi,static,numad,autonuma")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    sc = scenarios.load(args.scenario)
    k = traces.compression(sc)
    if k == 1.0:
        print(f"realtime: {sc.name} has no compressed traces", file=sys.stderr)
        return 2
    rt = traces.real_time(sc)
    real_s = args.hours * 3600 if args.hours else rt.duration
    out = {}
    print(f"{sc.name}: x{k:g} compression, {real_s / 3600:g} h of trace")
    print(f"{'policy':9} {'time':10} " + " ".join(f"{key[:14]:>14}" for key in KEYS)
          + f" {'wall s':>7}")
    for pol in [p.strip() for p in args.policies.split(",") if p.strip()]:
        for label, s, dur in (("compressed", sc, real_s / k), ("real", rt, real_s)):
            t = time.perf_counter()
            summary = simulate(s, pol, duration=dur, plots=False).summary
            row = {key: summary[key] for key in KEYS}
            row["wall_s"] = round(time.perf_counter() - t, 1)
            out[f"{pol}/{label}"] = row
            print(f"{pol:9} {label:10} " + " ".join(f"{row[key]!s:>14}" for key in KEYS)
                  + f" {row['wall_s']:>7}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
