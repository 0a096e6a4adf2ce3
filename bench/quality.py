"""The compare table for every built-in scenario, checked against issue 3's goals.

    python bench/quality.py [SCENARIO ...] [--seeds 1] [--jobs 2] [--json FILE]

For each scenario every policy runs on identical inputs (``homenode.compare``); then:

* G1  esxi's throughput_vs_ideal >= static's, numad's and autonuma's -- strictly higher
      where load changes after start (events, clients leaving or arriving later, or
      demand that follows a trace or a random walk);
* G2  esxi's throughput >= 0.97 x optimal's;
* G3  esxi converges faster than numad after every event (never converging counts as
      infinitely slow; both never converging is not faster; both converged at once,
      0 s, is a tie that counts as met);
* G4  esxi migrates at most 1.5 x the memory optimal's final placement strictly
      required (GiB of each client's pages off optimal's last home for it, as they lay
      once its memory was touched: ``OptimalPolicy.required_pages``).

A scenario that cannot be loaded (the trace scenarios without ../shared/traces) is
listed as skipped with the reason.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from homenode import compare as cmp
from homenode.cli.compare import notes, table
from homenode.errors import InputError
from homenode.sim import scenario as scenarios
from homenode.sim.scenario import EVENT_MERGE, Scenario

PEERS = ("static", "numad", "autonuma")
OPTIMAL_SHARE = 0.97       # G2
MIGRATION_FACTOR = 1.5     # G4
CHANGING_CURVES = {"trace", "random_walk", "step"}


def load_changes(sc: Scenario) -> bool:
    """Does the workload change after start (so a dynamic policy should beat static)?"""
    first = min((c.start for c in sc.clients), default=0.0)
    return bool(sc.events) or any(
        c.stop < sc.duration or c.start > first + EVENT_MERGE or c.curve.kind in CHANGING_CURVES
        for c in sc.clients)


def goals(sc: Scenario, doc: dict[str, Any]) -> dict[str, tuple[bool | None, str]]:
    pol = doc["policies"]
    e = pol["esxi"]
    out: dict[str, tuple[bool | None, str]] = {}
    thr = e["throughput_vs_ideal"]
    strict = load_changes(sc)
    peers = {p: pol[p]["throughput_vs_ideal"] for p in PEERS if p in pol}
    ok = all(thr > v if strict else thr >= v for v in peers.values())
    worst = max(peers, key=lambda p: peers[p]) if peers else None
    out["G1"] = (ok, f"{'>' if strict else '>='} best peer {worst} {peers.get(worst)}"
                 if worst else "no peers")
    if "optimal" in pol:
        o = pol["optimal"]["throughput_vs_ideal"]
        out["G2"] = (thr >= OPTIMAL_SHARE * o, f"{thr / o:.4f} of optimal")
        req = pol["optimal"].get("required_gib") or 0.0
        mig = e["gib_migrated"]
        out["G4"] = (mig <= MIGRATION_FACTOR * req + 1e-9,
                     f"{mig} GiB vs {MIGRATION_FACTOR} x {req} GiB")
    if "numad" in pol:
        faster, tied, slower = [], [], []
        for pe, pn in zip(e["per_seed"], pol["numad"]["per_seed"], strict=True):
            for ce, cn in zip(pe["convergence_s"], pn["convergence_s"], strict=True):
                se = math.inf if ce["seconds"] is None else ce["seconds"]
                sn = math.inf if cn["seconds"] is None else cn["seconds"]
                note = f"{ce['at_s']:g}s: {_s(se)} vs {_s(sn)}"
                if se < sn or se == sn == 0:      # both settled at once counts as a tie won
                    (faster if se < sn else tied).append(note)
                else:
                    slower.append(note)
        total = len(faster) + len(tied) + len(slower)
        out["G3"] = (None, "no events") if not total else (
            not slower, f"faster after {len(faster)}, both at once after {len(tied)}, not "
            f"faster after {len(slower)} of {total} events"
            + (f" ({'; '.join(slower[:3])})" if slower else ""))
    return out


def _s(x: float) -> str:
    return "never" if math.isinf(x) else f"{x:g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenarios", nargs="*")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None, help="write every compare.json here")
    args = ap.parse_args()
    names = args.scenarios or scenarios.builtin_names()
    console = Console(width=160)
    verdicts = Table(title="issue 3 goals for esxi (✓ met, ✗ missed)")
    for col in ("scenario", "load changes", "G1 >= peers", "G2 >= 0.97 optimal",
                "G3 faster than numad", "G4 <= 1.5 x required"):
        verdicts.add_column(col)
    docs = {}
    for name in names:
        try:
            sc = scenarios.load(name)
        except InputError as e:
            console.print(f"[yellow]skipped {name}: {e}")
            continue
        w0 = time.perf_counter()
        doc = cmp.run(sc, list(cmp.DEFAULT_POLICIES), args.seeds, jobs=args.jobs,
                      plots=False)
        docs[name] = doc
        console.print(table(doc))
        for line in notes(doc):
            console.print(line)
        console.print(f"({time.perf_counter() - w0:.0f} s wall)\n")
        g = goals(sc, doc)
        verdicts.add_row(name, "yes" if load_changes(sc) else "no",
                         *(_cell(g.get(k)) for k in ("G1", "G2", "G3", "G4")))
    console.print(verdicts)
    if args.json:
        args.json.write_text(json.dumps(docs, indent=2) + "\n")


def _cell(v: tuple[bool | None, str] | None) -> str:
    if v is None:
        return "—"
    ok, text = v
    mark = "—" if ok is None else ("✓" if ok else "✗")
    return f"{mark} {text}"


if __name__ == "__main__":
    main()
