"""Guest runs -> calibration fixtures, and the simulator's mirror of each beside them.

    python bench/calibrate.py reduce CASE_NAME RAW.json ... [--out tests/fixtures/calibration]
    python bench/calibrate.py compare [FIXTURE ...]

``reduce`` reads raw results ``bench/kernel_compare.py --raw DIR`` kept (one guest run
per file, at most one per balancer; the balancer is named inside) and writes one compact
fixture ``CASE_NAME.json``: the workers (size, first-touch node) and, per balancer, the
pages per second each worker touched over its life (its own report), the run length,
pages migrated, hinting faults, PTE updates, task moves between nodes (changes of the
node each worker last ran on, between 0.5 s samples: a lower bound), the workers' system
time, and pages per node every 2 s (``[t, node 0, node 1, ...]``).
``compare`` prints, per fixture and balancer, measured against simulated
(``homenode.sim.calibration``), and whether each count is inside its band.
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


def reduce_run(res: dict[str, Any]) -> dict[str, Any]:
    samples = res["samples"]
    cpu_node = {int(c): int(n) for n, cpus in res["node_cpus"].items() for c in cpus}
    nodes = len(res["node_cpus"])
    first, last = samples[0], samples[-1]

    def vm(key: str) -> int:
        return int(last["vm"].get(key, 0)) - int(first["vm"].get(key, 0))

    moves, where = 0, {}
    series, next_t = [], 0.0
    for s in samples:
        for pid, w in s["w"].items():
            if w.get("tag") != "managed":
                continue
            node = cpu_node[int(w["cpu"])]
            if pid in where and where[pid] != node:
                moves += 1
            where[pid] = node
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
            "pages_per_node": series}


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
                # touched while bound to one node, or wherever the scheduler ran it
                e["first_touch"] = node if pages[node] >= 0.95 * total else None
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
    dst.write_text(text + "\n")
    return dst


def compare(paths: list[Path]) -> int:
    bad = 0
    for p in paths:
        case = calibration.load_case(p)
        print(f"{case['case']}: {case['nodes']} nodes, workers "
              f"{', '.join(str(w['mib']) + ' MiB' for w in case['workers'])}")
        print(f"  {'balancer':9} {'count':15} {'guest':>9} {'sim':>9} {'ratio':>6}  band")
        for balancer, m in case["balancers"].items():
            if balancer not in calibration.POLICY_OF:
                continue
            sim = calibration.simulated(case, balancer)
            off = calibration.outside_band(m, sim)
            bad += bool(off)
            for key, (lo, hi) in calibration.BANDS.items():
                real, got = m[key], sim[key]
                ratio = f"{got / real:.2f}" if real else "-"
                ok = not any(line.startswith(key) for line in off)
                print(f"  {balancer:9} {key:15} {real:9g} {got:9g} {ratio:>6}  "
                      f"{lo:.2f}..{hi:.2f} {'ok' if ok else 'OUT'}")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("reduce")
    r.add_argument("name")
    r.add_argument("raw", type=Path, nargs="+")
    r.add_argument("--out", type=Path, default=FIXTURES)
    c = sub.add_parser("compare")
    c.add_argument("fixtures", type=Path, nargs="*")
    args = ap.parse_args(argv)
    if args.cmd == "reduce":
        print(reduce(args.raw, args.name, args.out))
        return 0
    return compare(args.fixtures or sorted(FIXTURES.glob("*.json")))


if __name__ == "__main__":
    sys.exit(main())
