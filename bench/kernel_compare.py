"""homenode side by side with numad and the kernel's NUMA balancing, in real NUMA guests.

    python bench/kernel_compare.py [--scenario imbalance|mixed] [--nodes 2|4] [--mib 400]
                                   [--balancers homenode,numad,numad_asis,autonuma,none]
                                   [--repeat N] [--duration 60] [--homenode-nice N]
                                   [--set NAME=VALUE ...] [--profile] [--json FILE]
                                   [--raw DIR]

``--repeat N`` runs the balancers interleaved (h, a, h, a, ...), each run in a fresh
guest, and prints the median of every column with its range (min-max) beside it.

Each balancer gets its own fresh guest (tools/qemu, TCG) and the same workload:

* ``imbalance`` (issue 8 b, numa01-like): one worker per node, each ``--mib`` MiB,
  first-touched on node 0 while bound there, then unbound; the balancer starts after.
* ``mixed`` (2 or 4 nodes): one big worker per node as above plus as many 64 MiB workers
  arriving 5 s later, unbound, first-touching wherever the scheduler runs them.

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
scanning and hinting faults are charged); that CPU time per migrated page (``us/pg``);
the workers' system time; homenode's longest and p99 wall gap between two ticks
(``gap max``/``gap p99``: a tick that waited on a copy shows here), its ready time and
``python -c "import numpy"`` timed in the same guest just before it started.
With ``--profile``, py-spy samples homenode's threads once it is ready (its top frames
are printed; ``--raw`` keeps the whole profile).

``--json FILE`` writes ``{"scenario", "nodes", "repeat", "balancers": {name: {"time_to_95_s",
"final_local", "pages_migrated", "balancer_cpu_s", ..., "runs": [per-run values]}}}``
(issue 8's schema, the top-level values being the medians, plus the other columns).
Emulated nodes have no remote-access penalty: this measures placement and migration
behaviour, not throughput.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from homenode_qemu import analysis, assets, run_python, scenarios

BALANCERS = ("homenode", "numad", "numad_asis", "autonuma", "none")
TABLE = [("balancer", 10), ("t95 s", 16), ("t95+bal", 16), ("final", 6),
         ("busy/node", 13), ("wk/node", 9), ("migrated", 9), ("needed", 8), ("ratio", 6),
         ("hint flt", 8), ("bal cpu", 15), ("us/pg", 14), ("wk sys", 7),
         ("gap max", 14), ("gap p99", 7), ("ready", 15), ("numpy", 5)]
# the columns given as "median (min-max)" over the runs
RANGED = {"time_to_95_s", "time_to_95_balanced_s", "balancer_cpu_s", "cpu_us_per_page",
          "tick_gap_max_s", "balancer_ready_s"}


def plan_for(scenario: str, kind: str, worker: str, nodes: int, mib: int,
             duration: float, nice: int = 0, settings: dict[str, Any] | None = None,
             profile: bool = False) -> scenarios.Plan:
    base = "numad" if kind == "numad_asis" else kind
    clock = kind != "numad_asis"
    kw = {"nodes": nodes, "mib": mib, "duration_s": duration, "numad_clock": clock,
          "nice": nice, "settings": settings, "profile": profile}
    if scenario == "imbalance":
        return scenarios.imbalance(worker, base, **kw)
    if scenario == "mixed":
        return scenarios.mixed(worker, base, **kw)
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
    lx = _linux_summary(res)
    gaps = lx.get("tick_gap_ms") or {}
    copier = lx.get("engine_cpu_s")
    every = analysis.tagged(samples[-1], tags)     # the late (mixed) workers count too
    return {"time_to_95_s": analysis.time_to_local(samples, cn, tags=tags, workers=every),
            "time_to_95_balanced_s": analysis.time_to_local(samples, cn, tags=tags,
                                                            balanced_nodes=nodes,
                                                            workers=every),
            "final_local": round(analysis.final_local(samples, cn, tags) or 0.0, 4),
            "pages_migrated": moved,
            "balancer_cpu_s": round(float(res["balancer_cpu_s"]), 3),
            "cpu_us_per_page": round(1e6 * float(res["balancer_cpu_s"]) / moved, 1)
            if moved else None,
            "tick_gap_max_s": _s(gaps.get("max")), "tick_gap_p99_s": _s(gaps.get("p99")),
            "tick_cpu_ms": lx.get("tick_cpu_ms"),
            # the copier threads alone (homenode.linux.engine), against the same pages
            "copier_cpu_s": copier,
            "copier_us_per_page": round(1e6 * copier / moved, 1) if copier and moved else None,
            "numpy_import_s": res.get("numpy_import_s"),
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


def _linux_summary(res: dict[str, Any]) -> dict[str, Any]:
    text = (res.get("balancer_out") or {}).get("summary")
    try:
        return json.loads(text).get("linux", {}) if text else {}
    except (ValueError, AttributeError):
        return {}


def _s(ms: float | None) -> float | None:
    return None if ms is None else round(ms / 1000.0, 3)


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


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One balancer's runs as one row: the median of each number (lists and text: the
    first run's), with "<key>_range" = [min, max] for the RANGED columns.  A run that
    never reached 95 % counts as longer than every other."""
    out: dict[str, Any] = dict(runs[0])
    for k, v0 in runs[0].items():
        if not isinstance(v0, (int, float)) and not (v0 is None and k in RANGED):
            continue
        vals = [r.get(k) for r in runs]
        if k.startswith("time_to_95"):
            key = [math.inf if v is None else v for v in vals]
            med = statistics.median_low(key) if len(key) % 2 == 0 else statistics.median(key)
            out[k] = None if med == math.inf else med
            out[f"{k}_range"] = [None if v == math.inf else v for v in (min(key), max(key))]
            continue
        nums = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if not nums:
            continue
        med = statistics.median(nums)
        out[k] = round(med, 3) if isinstance(med, float) else med
        if k in RANGED:
            out[f"{k}_range"] = [min(nums), max(nums)]
    return out


def row(name: str, m: dict[str, Any]) -> list[str]:
    def f(x: Any, fmt: str) -> str:
        return "-" if x is None else fmt.format(x)

    def t(x: Any) -> str:
        return "never" if x is None else f"{x:.1f}"

    def ranged(k: str, show=t) -> str:
        r = m.get(f"{k}_range")
        cell = show(m.get(k))
        if r and r[0] != r[1]:
            cell += f" ({show(r[0])}-{show(r[1])})"
        return cell

    busy = "/".join(f"{b:.2f}" for b in m["node_busy"] or [])
    def num(fmt: str):
        return lambda x: f(x, fmt)

    return [name, ranged("time_to_95_s"), ranged("time_to_95_balanced_s"),
            f(m["final_local"], "{:.3f}"), busy, "/".join(map(str, m["workers_per_node"])),
            str(m["pages_migrated"]), str(m["pages_needed_for_final_placement"]),
            f(m["migrated_ratio"], "{:.2f}"), str(m["numa_hint_faults"]),
            ranged("balancer_cpu_s", num("{:.2f}")), ranged("cpu_us_per_page", num("{:.0f}")),
            f(m["workers_sys_s"], "{:.2f}"), ranged("tick_gap_max_s", num("{:.2f}")),
            f(m.get("tick_gap_p99_s"), "{:.2f}"), ranged("balancer_ready_s", num("{:.1f}")),
            f(m.get("numpy_import_s"), "{:.1f}")]


def print_table(title: str, rows: list[list[str]]) -> None:
    print(title)
    print("  ".join(h.ljust(w) for h, w in TABLE))
    for r in rows:
        print("  ".join(c.ljust(w) for c, (_, w) in zip(r, TABLE, strict=True)))


def top_frames(profile: str, n: int = 25) -> list[str]:
    """py-spy's raw (collapsed) stacks -> the n functions with most samples, self time."""
    own: dict[str, int] = {}
    total = 0
    for line in profile.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        leaf = stack.split(";")[-1]
        own[leaf] = own.get(leaf, 0) + int(count)
    top = sorted(own.items(), key=lambda kv: -kv[1])[:n]
    return [f"{100.0 * c / max(total, 1):5.1f} %  {name}" for name, c in top]


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
    ap.add_argument("--repeat", type=int, default=1, metavar="N",
                    help="runs per balancer, interleaved (h, a, h, a, ...); medians")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE",
                    help="a homenode setting for these runs (e.g. page_mig_copiers=0)")
    ap.add_argument("--slack", type=float, default=2.0, metavar="X",
                    help="guest time limit = X times the scenario's (default 2: a loaded "
                         "host slows TCG guests several times over)")
    ap.add_argument("--profile", action="store_true",
                    help="sample homenode with py-spy (from the venv) once it is ready")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--raw", type=Path, default=None, metavar="DIR",
                    help="also keep each guest's full result (samples, balancer log) here")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        print(f"kernel_compare: --repeat {args.repeat}: must be at least 1", file=sys.stderr)
        return 2
    settings = {}
    for item in args.sets:
        name, eq, value = item.partition("=")
        if not eq:
            print(f"kernel_compare: --set {item!r}: expected NAME=VALUE", file=sys.stderr)
            return 2
        try:
            settings[name] = json.loads(value)      # numbers (also negative), true/false
        except ValueError:
            settings[name] = value
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
    out: dict[str, Any] = {"scenario": args.scenario, "nodes": args.nodes, "mib": args.mib,
                           "repeat": args.repeat, "settings": settings, "balancers": {}}
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    errors: dict[str, str] = {}
    for rep in range(args.repeat):
        for kind in kinds:
            plan = plan_for(args.scenario, kind, worker, args.nodes, args.mib, args.duration,
                            args.homenode_nice, settings or None, args.profile)
            t = time.monotonic()
            run = run_python(plan.machine, plan.module, plan.params,
                             timeout_s=plan.timeout_s * args.slack)
            if not run.ok:
                print(f"{kind} (run {rep + 1}): guest run failed\n{run.why()}",
                      file=sys.stderr)
                errors[kind] = run.why()[:2000]
                continue
            if args.raw:
                args.raw.mkdir(parents=True, exist_ok=True)
                raw = args.raw / f"{args.scenario}-{args.nodes}n-{kind}-{rep + 1}.json"
                raw.write_text(json.dumps(run.result))
            m = measure(run.result, args.nodes)
            m["boot_to_poweroff_s"] = round(run.wall_s, 1)
            runs[kind].append(m)
            profile = (run.result.get("balancer_out") or {}).get("profile")
            if profile:
                print(f"  [{kind} run {rep + 1}: py-spy, own samples per function]",
                      file=sys.stderr)
                for line in top_frames(profile):
                    print(f"    {line}", file=sys.stderr)
            print(f"  [{kind} run {rep + 1}: guest {run.wall_s:.0f} s wall, boot "
                  f"{run.boot_s} s, total {time.monotonic() - t:.0f} s, t95 "
                  f"{m['time_to_95_s']}, us/page {m['cpu_us_per_page']}]", file=sys.stderr)
    rows = []
    for kind in kinds:
        if runs[kind]:
            m = median_of(runs[kind])
            m["runs"] = runs[kind]
            out["balancers"][kind] = m
            rows.append(row(kind, m))
        elif kind in errors:
            out["balancers"][kind] = {"error": errors[kind]}
    print_table(f"{args.scenario}, {args.nodes} nodes, {args.mib} MiB workers, "
                f"{args.repeat} run(s) each, interleaved (QEMU TCG guest; t95 from balancer "
                "ready; median (min-max))", rows)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
