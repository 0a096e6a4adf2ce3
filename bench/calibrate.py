"""Guest runs -> calibration fixtures, and the simulator's mirror of each beside them.

    python bench/calibrate.py reduce CASE_NAME RAW.json ... [--out tests/fixtures/calibration]
    python bench/calibrate.py compare [FIXTURE ...]
    python bench/calibrate.py record RAW_DIR [--only CASE,...] [--balancers B,...] [--trace]
    python bench/calibrate.py trace RAW.json ...

``record`` boots one fresh guest per (case, balancer) of MATRIX (tools/qemu, as
bench/kernel_compare.py does; run it under ``flock /work/qemu.lock``), keeps each raw
result in RAW_DIR and reduces each case into a fixture as soon as its runs are in.

``reduce`` reads raw results ``bench/kernel_compare.py --raw DIR`` kept (one guest run
per file, at most one per balancer; the balancer is named inside) and writes one compact
fixture ``CASE_NAME.json``: the workers (size, first-touch node) and, per balancer, the
pages per second each worker touched over its life (its own report), the run length,
pages migrated, hinting faults, PTE updates, task moves between nodes (changes of the
node each worker last ran on, between 0.5 s samples: a lower bound), the workers' system
time, pages per node every 2 s (``[t, node 0, node 1, ...]``) and, at every sample, the
node each worker last ran on (``[t, "0110"]``, workers in the fixture's order; ``-``:
not started yet).
``compare`` prints, per fixture and balancer, measured against simulated
(``homenode.sim.calibration``), the ratio the replayed mirror gives (the workers run
where the guest's ran: ``calibration.Replay``), and whether each count is inside its
goal band or its documented one.
``trace`` summarises the scheduler trace a ``record --trace`` run kept: the workers' moves
between CPUs by who made them -- AutoNUMA (``sched_move_numa``/``sched_swap_numa`` and
the ``migration/N`` stopper moves they cause), the load balancer in softirq context, the
idle balancer, wakeups -- and how many came back within EXCURSION_S (too short for
the 0.5 s samples to see), with ``/proc/PID/sched``'s nr_migrations.
Every guest boot is kernel_compare's (run it under ``flock /work/qemu.lock``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from homenode.sim import calibration

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "calibration"
EVERY_S = 2.0
FIRST_TOUCH_SHARE = 0.5     # a worker's first-touch node holds more than this share


def reduce_run(res: dict[str, Any]) -> dict[str, Any]:
    samples = res["samples"]
    cpu_node = {int(c): int(n) for n, cpus in res["node_cpus"].items() for c in cpus}
    nodes = len(res["node_cpus"])
    first, last = samples[0], samples[-1]

    def vm(key: str) -> int:
        return int(last["vm"].get(key, 0)) - int(first["vm"].get(key, 0))

    moves, where = 0, {}
    series, next_t = [], 0.0
    order: list[str] = []         # workers in order of first sight (as workers_of)
    ran_on = []
    for s in samples:
        for pid, w in s["w"].items():
            if w.get("tag") != "managed":
                continue
            node = cpu_node[int(w["cpu"])]
            if pid in where and where[pid] != node:
                moves += 1
            where[pid] = node
            if pid not in order:
                order.append(pid)
        now = {pid: cpu_node[int(w["cpu"])] for pid, w in s["w"].items()
               if w.get("tag") == "managed"}
        ran_on.append([round(s["t"], 2), "".join(str(now[p]) if p in now else "-"
                                                 for p in order)])
        if s["t"] >= next_t - 1e-9:
            per = [0] * nodes
            for w in s["w"].values():
                if w.get("tag") == "managed":
                    for n, c in w["pages"].items():
                        per[int(n)] += int(c)
            series.append([round(s["t"], 2), *per])
            next_t = s["t"] + EVERY_S
    sys_s = sum(w.get("stime", 0.0) for w in last["w"].values()) - \
        sum(w.get("stime", 0.0) for w in first["w"].values())
    return {"run_s": round(float(last["t"]), 2), "pages_migrated": vm("pgmigrate_success"),
            "hint_faults": vm("numa_hint_faults"), "pte_updates": vm("numa_pte_updates"),
            "task_moves": moves, "workers_sys_s": round(sys_s, 3),
            "pages_per_node": series, "ran_on": ran_on}


def workers_of(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Each managed worker's size, arrival, first-touch node and touch rate."""
    rate = {str(w["pid"]): w["pages_done"] / w["t"] for w in res.get("workers", ())
            if w.get("tag") == "managed" and w.get("t")}
    seen: dict[str, dict[str, Any]] = {}
    for s in res["samples"]:
        for pid, w in s["w"].items():
            if w.get("tag") != "managed":
                continue
            pages = {int(n): int(c) for n, c in w["pages"].items()}
            total = sum(pages.values())
            e = seen.setdefault(pid, {"start_s": round(s["t"], 1), "pages": 0,
                                      "first_touch": None})
            if total > e["pages"]:
                e["pages"] = total
            if "first_touch_at" not in e and total > 0:
                e["first_touch_at"] = s["t"]
                node = max(pages, key=lambda n: pages[n])
                # a worker there before the balancer (in the first sample) starts where
                # most of its memory lay: the node it was bound to while touching; one
                # that arrives later is placed by the balancer (None)
                early = s is res["samples"][0]
                e["first_touch"] = (node if early and pages[node] > FIRST_TOUCH_SHARE * total
                                    else None)
    out = []
    for pid, e in seen.items():
        w = {"mib": max(1, round(e["pages"] * 4096 / 2**20)), "start_s": e["start_s"],
             "first_touch": e["first_touch"]}
        if pid in rate:
            w["touch_pages_per_s"] = round(rate[pid], 1)
        out.append(w)
    return out


def reduce(runs: list[Path], name: str, out: Path) -> Path:
    case: dict[str, Any] = {"case": name, "sources": [str(p) for p in runs], "balancers": {}}
    for p in runs:
        res = json.loads(p.read_text())
        balancer = res["balancer"]
        case["nodes"] = len(res["node_cpus"])
        workers = workers_of(res)
        case.setdefault("workers", [{k: v for k, v in w.items() if k != "touch_pages_per_s"}
                                    for w in workers])
        case["balancers"][balancer] = reduce_run(res)
        rates = [w.get("touch_pages_per_s") for w in workers]
        if all(rates):
            case["balancers"][balancer]["touch_pages_per_s"] = rates
    case["mem_per_node_mib"] = max(1024, sum(w["mib"] for w in case["workers"]) + 512)
    out.mkdir(parents=True, exist_ok=True)
    dst = out / f"{name}.json"
    # one line per sample: numbers-only arrays collapsed
    text = re.sub(r"\[\s+([-\d.,\s]+?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]",
                  json.dumps(case, indent=1))
    text = re.sub(r'\[\s+([-\d.]+),\s+("[-\d]*")\s+\]', r"[\1, \2]", text)
    dst.write_text(text + "\n")
    return dst


# The recorded matrix: (case, scenario, nodes, big workers, big MiB, small MiB, balancers,
# run length).  A case with one worker (nothing to move) runs its full length: it
# measures autonuma's scanning alone; the others stop once settled (as kernel_compare).
MATRIX = [
    ("imbalance-2n-2w-128", "imbalance", 2, 2, 128, 0, ("autonuma", "homenode", "numad"), 45),
    ("imbalance-4n-4w-64", "imbalance", 4, 4, 64, 0, ("autonuma", "homenode", "numad"), 60),
    ("scan-2n-1w-256", "imbalance", 2, 1, 256, 0, ("autonuma",), 30),
    ("mixed-2n-128-64", "mixed", 2, 2, 128, 64, ("autonuma", "homenode", "numad"), 45),
    ("imbalance-4n-2w-128", "imbalance", 4, 2, 128, 0, ("autonuma", "numad"), 45),
    ("imbalance-2n-3w-96", "imbalance", 2, 3, 96, 0, ("autonuma",), 45),
    ("imbalance-2n-2w-400", "imbalance", 2, 2, 400, 0, ("autonuma", "numad"), 60),
]


def record(raw_dir: Path, only: set[str] | None, slack: float, out: Path,
           trace: bool = False, kinds_only: set[str] | None = None) -> int:
    import time

    from homenode_qemu import assets, run_python, scenarios

    why = assets.missing()
    if why:
        print(f"calibrate: cannot boot a guest: {why}", file=sys.stderr)
        return 2
    worker = str(assets.worker_binary(assets.build_dir()))
    raw_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name, scen, nodes, count, mib, small, kinds, duration in MATRIX:
        if only and name not in only:
            continue
        raws = []
        for kind in kinds:
            if kinds_only and kind not in kinds_only:
                continue
            kw = {"nodes": nodes, "mib": mib, "duration_s": duration}
            plan = (scenarios.mixed(worker, kind, small_mib=small, **kw) if scen == "mixed"
                    else scenarios.imbalance(worker, kind, **kw))
            for g in plan.params["groups"]:
                g["count"] = count
            if count < nodes:       # nothing to balance evenly: run the full length
                plan.params["balanced_nodes"] = None
            if count == 1:
                plan.params["stop_when_local"] = False
            plan.params["sched_trace"] = trace
            t = time.monotonic()
            run = run_python(plan.machine, plan.module, plan.params,
                             timeout_s=plan.timeout_s * slack)
            print(f"[{time.strftime('%H:%M:%S')}] {name} {kind}: ok={run.ok} guest "
                  f"{run.wall_s:.0f} s, total {time.monotonic() - t:.0f} s", flush=True)
            if not run.ok:
                print(run.why()[-2000:], file=sys.stderr, flush=True)
                failed += 1
                continue
            dst = raw_dir / f"{name}-{kind}.json"
            dst.write_text(json.dumps(run.result))
            raws.append(dst)
        if raws:        # with the case's runs recorded earlier into the same folder
            every = sorted(raw_dir.glob(f"{name}-*.json"))
            print(reduce(every, name, out), flush=True)
    return 1 if failed else 0


EXCURSION_S = 0.5       # a move undone within this is invisible to the 0.5 s samples
_MOVE = re.compile(r"^\s*(\S+)\s+\[(\d+)\]\s+(\S+)\s+([\d.]+): sched_migrate_task: .*?pid=(\d+) "
                   r".*?orig_cpu=(\d+) dest_cpu=(\d+)")


def trace_summary(res: dict[str, Any]) -> dict[str, Any]:
    """Who moved the workers between CPUs, from a ``record --trace`` raw result."""
    tr = res.get("sched_trace") or {}
    lines = tr.get("lines", [])
    kinds: dict[str, int] = {}
    last: dict[str, tuple[float, int, int]] = {}
    back = 0
    for ln in lines:
        m = _MOVE.match(ln)
        if not m:
            if "sched_swap_numa" in ln or "sched_move_numa" in ln:
                kind = "numa_swap" if "swap" in ln else "numa_move"
                kinds[kind] = kinds.get(kind, 0) + 1
            continue
        comm, _cpu, flags, t, pid, src, dst = m.groups()
        kind = ("stopper (numa swap/move, active balance)" if comm.startswith("migration/")
                else "idle balance" if comm.startswith("<idle>")
                else "softirq load balance" if "s" in flags[2:4]
                else "wakeup or other")
        kinds[kind] = kinds.get(kind, 0) + 1
        prev = last.get(pid)
        if prev and float(t) - prev[0] <= EXCURSION_S and int(dst) == prev[1]:
            back += 1
        last[pid] = (float(t), int(src), int(dst))
    migr = {}
    for pid, text in (tr.get("proc_sched") or {}).items():
        for ln in text.splitlines():
            if ln.startswith("se.nr_migrations"):
                migr[pid] = int(ln.split(":")[1])
    return {"moves_by_kind": kinds, "undone_within_s": back, "excursion_s": EXCURSION_S,
            "nr_migrations": migr, "knobs": tr.get("numa_balancing_knobs", {})}


def compare(paths: list[Path]) -> int:
    bad = 0
    for p in paths:
        case = calibration.load_case(p)
        print(f"{case['case']}: {case['nodes']} nodes, workers "
              f"{', '.join(str(w['mib']) + ' MiB' for w in case['workers'])}")
        print(f"  {'balancer':9} {'count':15} {'guest':>10} {'sim':>10} {'ratio':>6} "
              f"{'replay':>6}  goal band / documented band")
        for balancer, m in case["balancers"].items():
            if balancer not in calibration.POLICY_OF:
                continue
            sim = calibration.simulated(case, balancer)
            played = (calibration.simulated(case, balancer, replay=True)
                      if m.get("ran_on") else None)
            real = calibration.measured(m)
            goal_off = calibration.outside_band(m, sim, goal=True)
            off = calibration.outside_band(m, sim)
            bad += bool(off)
            for key, (lo, hi) in calibration.BANDS.items():
                got = sim[key]
                small = 0.0 if key == "charge" else calibration.SMALL_COUNT
                r = calibration.ratio(real[key], got, small)
                shown = "-" if r is None else f"{r:.2f}"
                rp = (calibration.ratio(real[key], played[key], small)
                      if played is not None else None)
                replayed = "-" if rp is None else f"{rp:.2f}"
                verdict = ("-" if r is None else
                           "ok" if not any(x.startswith(key) for x in goal_off) else
                           "OUT (documented)" if not any(x.startswith(key) for x in off)
                           else "OUT")
                doc = calibration.band(m, key)
                extra = f" / {doc[0]:.2f}..{doc[1]:.2f}" if doc[2] else ""
                print(f"  {balancer:9} {key:15} {_g(real[key]):>10} {_g(got):>10} "
                      f"{shown:>6} {replayed:>6}  {lo:.2f}..{hi:.2f}{extra} {verdict}")
    return 1 if bad else 0


def _g(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("reduce")
    r.add_argument("name")
    r.add_argument("raw", type=Path, nargs="+")
    r.add_argument("--out", type=Path, default=FIXTURES)
    tp = sub.add_parser("trace")
    tp.add_argument("raw", type=Path, nargs="+")
    c = sub.add_parser("compare")
    c.add_argument("fixtures", type=Path, nargs="*")
    rec = sub.add_parser("record")
    rec.add_argument("raw_dir", type=Path)
    rec.add_argument("--only", default="", help="comma-separated case names of MATRIX")
    rec.add_argument("--slack", type=float, default=2.0)
    rec.add_argument("--out", type=Path, default=FIXTURES)
    rec.add_argument("--balancers", default="", help="comma-separated: only these")
    rec.add_argument("--trace", action="store_true",
                     help="keep the scheduler's task-move trace in the raw results")
    args = ap.parse_args(argv)
    if args.cmd == "record":
        only = {c for c in args.only.split(",") if c} or None
        kinds = {k for k in args.balancers.split(",") if k} or None
        return record(args.raw_dir, only, args.slack, args.out, args.trace, kinds)
    if args.cmd == "trace":
        for p in args.raw:
            res = json.loads(p.read_text())
            print(p.name, res.get("balancer"), f"{res.get('t_end')} s:",
                  json.dumps(trace_summary(res)))
        return 0
    if args.cmd == "reduce":
        print(reduce(args.raw, args.name, args.out))
        return 0
    return compare(args.fixtures or sorted(FIXTURES.glob("*.json")))


if __name__ == "__main__":
    sys.exit(main())
