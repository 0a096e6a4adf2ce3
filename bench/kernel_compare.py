"""homenode side by side with numad and the kernel's NUMA balancing, in real NUMA guests.

    python bench/kernel_compare.py [--scenario imbalance|mixed] [--nodes 2|4] [--mib 400]
                                   [--balancers homenode,numad,numad_asis,autonuma,none]
                                   [--duration 60] [--homenode-nice N] [--json FILE]
                                   [--raw DIR]

Each balancer gets its own fresh guest (tools/qemu, TCG) and the same workload:

* ``imbalance`` (issue 8 b, numa01-like): one worker per node, each ``--mib`` MiB,
  first-touched on node 0 while bound there, then unbound; the balancer starts after.
* ``mixed`` (2 nodes): two big workers as above plus two 64 MiB workers arriving 5 s later,
  unbound, first-touching wherever the scheduler runs them.

numad runs as a daemon with its defaults, once with a long-running host's clock
(``numad``: ``unshare --time --monotonic 100000``, see balancers.Numad) and once as-is
(``numad_asis``).  ``autonuma`` boots the guest with numa_balancing=1 and no daemon.

Per run: seconds until every worker holds ≥ 95 % local memory for 2 s (analysis.HOLD_S),
and until that holds with the workers spread evenly over the nodes (``t95+bal``: numad
makes workers local by moving them to their memory, all onto one node), from when the
balancer is ready (homenode's start-up, Python and NumPy under emulation, is
reported apart); the least local worker at the end; node CPU busy fractions over the last
5 s; workers per node; pages migrated (/proc/vmstat pgmigrate_success), the pages that had
to move for the placement the run ended with (``needed``: each worker's pages when first
sampled that were off its final node) and their ratio; NUMA hinting faults; the balancer's
own CPU seconds during the run (autonuma: the workers' system time, where the kernel's
scanning and hinting faults are charged); the workers' system time.

``--json FILE`` writes ``{"scenario", "nodes", "balancers": {name: {"time_to_95_s",
"final_local", "pages_migrated", "balancer_cpu_s", ...}}}`` (issue 8's schema, plus the
other columns).  Emulated nodes have no remote-access penalty: this measures placement and
migration behaviour, not throughput.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from homenode_qemu import analysis, assets, run_python, scenarios

BALANCERS = ("homenode", "numad", "numad_asis", "autonuma", "none")
TABLE = [("balancer", 11), ("t95 s", 7), ("t95+bal", 8), ("final", 6),
         ("busy/node", 13), ("wk/node", 9), ("migrated", 9), ("needed", 8), ("ratio", 6),
         ("hint flt", 9), ("bal cpu", 8), ("wk sys", 7), ("ready", 6)]


def plan_for(scenario: str, kind: str, worker: str, nodes: int, mib: int,
             duration: float, nice: int = 0) -> scenarios.Plan:
    base = "numad" if kind == "numad_asis" else kind
    clock = kind != "numad_asis"
    if scenario == "imbalance":
        return scenarios.imbalance(worker, base, nodes=nodes, mib=mib, duration_s=duration,
                                   numad_clock=clock, nice=nice)
    if scenario == "mixed":
        if nodes != 2:
            raise SystemExit("the mixed scenario is defined on 2 nodes")
        return scenarios.mixed(worker, base, mib=mib, duration_s=duration, numad_clock=clock,
                               nice=nice)
    raise SystemExit(f"unknown scenario {scenario!r}")


def measure(res: dict[str, Any], nodes: int) -> dict[str, Any]:
    """The figures of one run, from the guest's samples."""
    samples = res["samples"]
    cn = analysis.cpu_to_node(res["node_cpus"])
    tags = ["managed"]
    first = samples[0]
    # pages that had to move for the placement this balancer ended with (each worker's
    # pages, when it was first sampled, off the node it ended on)
    needed = analysis.pages_to_move(samples, cn, tags)
    # and for one-worker-per-node locality, from the layout at t0 (before any balancer)
    remote0 = _must_move(first, nodes)
    moved = analysis.vm_delta(samples, "pgmigrate_success")
    busy = analysis.node_busy(samples, res["node_cpus"])
    wsys = sum(w["stime"] for w in samples[-1]["w"].values()) - \
        sum(w["stime"] for w in first["w"].values())
    return {"time_to_95_s": analysis.time_to_local(samples, cn, tags=tags),
            "time_to_95_balanced_s": analysis.time_to_local(samples, cn, tags=tags,
                                                            balanced_nodes=nodes),
            "final_local": round(analysis.final_local(samples, cn, tags) or 0.0, 4),
            "pages_migrated": moved,
            "balancer_cpu_s": round(float(res["balancer_cpu_s"]), 3),
            "remote_pages_at_start": remote0,
            "pages_needed_for_final_placement": needed,
            "migrated_ratio": round(moved / needed, 3) if needed else None,
            "node_busy": busy, "node_imbalance": analysis.imbalance(busy),
            "workers_per_node": analysis.workers_per_node(samples[-1], cn, nodes, tags),
            "numa_hint_faults": analysis.vm_delta(samples, "numa_hint_faults"),
            "workers_sys_s": round(wsys, 3),
            "balancer_ready_s": res.get("ready_s"),
            "balancer_startup_cpu_s": res.get("balancer_startup_cpu_s"),
            "run_s": res.get("t_end"),
            "checksum_errors": sum(w["errors"] for w in res["workers"]),
            "stalls": sum(w["stalls"] for w in res["workers"])}


def _must_move(sample: dict[str, Any], nodes: int) -> int:
    pages = [{int(n): c for n, c in w["pages"].items()} for w in sample["w"].values()
             if w["tag"] == "managed"]
    total = sum(sum(p.values()) for p in pages)
    per_node = max(1, len(pages) // nodes)
    # the workers that may stay where their memory is: per_node of them on each node
    stay = 0
    for n in range(nodes):
        here = sorted((p.get(n, 0) for p in pages), reverse=True)
        stay += sum(here[:per_node])
    return max(0, total - stay)


def row(name: str, m: dict[str, Any]) -> list[str]:
    def f(x: Any, fmt: str) -> str:
        return "-" if x is None else fmt.format(x)
    busy = "/".join(f"{b:.2f}" for b in m["node_busy"] or [])
    def t(x: Any) -> str:
        return "never" if x is None else f"{x:.1f}"
    return [name, t(m["time_to_95_s"]), t(m["time_to_95_balanced_s"]),
            f(m["final_local"], "{:.3f}"), busy, "/".join(map(str, m["workers_per_node"])),
            str(m["pages_migrated"]), str(m["pages_needed_for_final_placement"]),
            f(m["migrated_ratio"], "{:.2f}"), str(m["numa_hint_faults"]),
            f(m["balancer_cpu_s"], "{:.2f}"), f(m["workers_sys_s"], "{:.2f}"),
            f(m["balancer_ready_s"], "{:.1f}")]


def print_table(title: str, rows: list[list[str]]) -> None:
    print(title)
    print("  ".join(h.ljust(w) for h, w in TABLE))
    for r in rows:
        print("  ".join(c.ljust(w) for c, (_, w) in zip(r, TABLE, strict=True)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", default="imbalance", choices=["imbalance", "mixed"])
    ap.add_argument("--nodes", type=int, default=2, choices=[2, 4])
    ap.add_argument("--mib", type=int, default=400, help="big workers' size (MiB)")
    ap.add_argument("--balancers", default=",".join(BALANCERS))
    ap.add_argument("--duration", type=float, default=60.0,
                    help="longest run per balancer (s); homenode and autonuma stop early "
                         "once settled")
    ap.add_argument("--homenode-nice", type=int, default=0, metavar="N",
                    help="run homenode under `nice -n N` (default 0: the workers' priority)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--raw", type=Path, default=None, metavar="DIR",
                    help="also keep each guest's full result (samples, balancer log) here")
    args = ap.parse_args(argv)
    why = assets.missing()
    if why:
        print(f"kernel_compare: cannot boot a guest: {why}", file=sys.stderr)
        return 2
    kinds = [k.strip() for k in args.balancers.split(",") if k.strip()]
    bad = [k for k in kinds if k not in BALANCERS]
    if bad:
        print(f"kernel_compare: unknown balancer {bad[0]!r} (known: {', '.join(BALANCERS)})",
              file=sys.stderr)
        return 2
    worker = str(assets.worker_binary(assets.build_dir()))
    out: dict[str, Any] = {"scenario": args.scenario, "nodes": args.nodes, "balancers": {}}
    rows = []
    for kind in kinds:
        plan = plan_for(args.scenario, kind, worker, args.nodes, args.mib, args.duration,
                        args.homenode_nice)
        t = time.monotonic()
        run = run_python(plan.machine, plan.module, plan.params, timeout_s=plan.timeout_s)
        if not run.ok:
            print(f"{kind}: guest run failed\n{run.why()}", file=sys.stderr)
            out["balancers"][kind] = {"error": run.why()[:2000]}
            continue
        if args.raw:
            args.raw.mkdir(parents=True, exist_ok=True)
            raw = args.raw / f"{args.scenario}-{args.nodes}n-{kind}.json"
            raw.write_text(json.dumps(run.result))
        m = measure(run.result, args.nodes)
        m["boot_to_poweroff_s"] = round(run.wall_s, 1)
        out["balancers"][kind] = m
        rows.append(row(kind, m))
        print(f"  [{kind}: guest {run.wall_s:.0f} s wall, boot {run.boot_s} s, "
              f"total {time.monotonic() - t:.0f} s]", file=sys.stderr)
    print_table(f"{args.scenario}, {args.nodes} nodes, {args.mib} MiB workers "
                "(QEMU TCG guest; t95 from balancer ready)", rows)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0 if all("error" not in v for v in out["balancers"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
