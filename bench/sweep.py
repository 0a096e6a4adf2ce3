"""Sweep throughput: cases per second on the local pool (2 jobs) vs Dask ``local:2``, on
``smoke`` and on a slice of ``train`` (goal: Dask >= 0.8 x local); resume after a Ctrl-C
at about half-way; and what one case of each kind costs.

    python bench/sweep.py [--repeat 2] [--slice 100] [--specs smoke,train]
                          [--costs DIR ...] [--no-resume]

Runs are interleaved (local, dask, local, dask, ...) so both see the same machine load;
the table gives the median and range of cases/s.  ``--costs DIR`` adds the median wall
time per case kind (trace set x shape, or synthetic; x policy) from DIR/timings.csv or,
while a sweep is still running, from its stored records.  The machine is shared: compare
the ratio within one run, not the absolute figures across runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from homenode.sweep import cases, driver, executors
from homenode.sweep import spec as specs

GOAL = 0.8          # Dask cases/s at least this share of the local pool's


def plan_of(name: str, first: int | None) -> cases.Plan:
    plan = cases.expand(specs.load(name))
    if first is not None:
        # The first cases in the sweep's own order: whole instances, an even sample of
        # every family (what a stopped sweep has run).
        plan = dataclasses.replace(plan, cases=driver.run_order(plan.cases)[:first])
    return plan


def timed(plan: cases.Plan, kind: str, tmp: Path) -> float:
    out = Path(tempfile.mkdtemp(dir=tmp))
    shutil.rmtree(out)
    ex = executors.LocalPool(plan.root, 2) if kind == "local" else \
        executors.Dask("local:2", plan.files)
    try:
        t0 = time.perf_counter()     # the cluster's start is not part of the rate
        res = driver.run(plan, out, ex)
        wall = time.perf_counter() - t0
    finally:
        ex.close()
    assert res.executed == len(plan.cases), res
    return len(plan.cases) / wall


def throughput(names: list[str], repeat: int, first: int, tmp: Path, console: Console) -> None:
    t = Table(title="cases per second (median, range), interleaved local / dask")
    for col in ("spec", "cases", "local pool (2 jobs)", "dask local:2", "dask / local",
                "goal"):
        t.add_column(col, justify="left" if col == "spec" else "right")
    for name in names:
        plan = plan_of(name, first if name != "smoke" else None)
        rates: dict[str, list[float]] = defaultdict(list)
        for k in range(repeat):
            for kind in ("local", "dask") if k % 2 == 0 else ("dask", "local"):
                rates[kind].append(timed(plan, kind, tmp))
                console.print(f"  {name} {kind} run {k + 1}: {rates[kind][-1]:.3f} cases/s")
        lo, da = (statistics.median(rates[k]) for k in ("local", "dask"))
        t.add_row(name, str(len(plan.cases)), _mr(rates["local"]), _mr(rates["dask"]),
                  f"{da / lo:.2f}", f">= {GOAL}")
    console.print(t)


def _mr(v: list[float]) -> str:
    return f"{statistics.median(v):.3f} ({min(v):.3f}-{max(v):.3f})"


def resume(tmp: Path, console: Console) -> None:
    """smoke via the CLI, SIGINT once half its cases are stored, then --resume."""
    out = tmp / "resume"
    total = len(cases.expand(specs.load("smoke")).cases)
    exe = str(Path(sys.executable).with_name("homenode"))
    proc = subprocess.Popen([exe, "sweep", "smoke", "--out", str(out), "--jobs", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while len(list((out / "cases").glob("*/*.json"))) < total // 2 and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    rc = proc.wait()
    stored = len(list((out / "cases").glob("*/*.json")))
    p = subprocess.run([exe, "sweep", "smoke", "--out", str(out), "--jobs", "2", "--resume"],
                       capture_output=True, text=True)
    line = next((x for x in p.stdout.splitlines() if " cases: " in x), p.stdout[-200:])
    console.print(f"resume: smoke has {total} cases; Ctrl-C (exit {rc}) with {stored} "
                  f"stored; the resumed run says: {line.strip()}")


def costs(dirs: list[Path], console: Console) -> None:
    t = Table(title="wall seconds per case (median, max) by kind; the machine was loaded")
    for col in ("kind", "policy", "cases", "median s", "max s"):
        t.add_column(col, justify="left" if col in ("kind", "policy") else "right")
    d: dict[tuple[str, str], list[float]] = defaultdict(list)
    for root in dirs:
        for f in sorted((root / "cases").glob("*/*.json")):
            r = json.loads(f.read_text())
            m = r["meta"]
            if r["status"] != "ok":
                continue
            kind = "synthetic" if m["family"] != "traces" else \
                f"{m['set'][:2] if m['set'].startswith('pl') else m['set']} on {m['shape']}"
            d[(kind, m["policy"])].append(r["timing"]["wall_s"])
    for (kind, pol), v in sorted(d.items()):
        t.add_row(kind, pol, str(len(v)), f"{statistics.median(v):.1f}", f"{max(v):.1f}")
    console.print(t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--slice", type=int, default=100, help="cases of train to time")
    ap.add_argument("--specs", default="smoke,train")
    ap.add_argument("--costs", type=Path, nargs="*", default=[])
    ap.add_argument("--no-resume", action="store_true")
    args = ap.parse_args()
    console = Console(width=120)
    with tempfile.TemporaryDirectory(prefix="homenode-bench-sweep-") as tmp:
        names = [n for n in args.specs.split(",") if n]
        if names:
            throughput(names, args.repeat, args.slice, Path(tmp), console)
        if not args.no_resume:
            resume(Path(tmp), console)
    if args.costs:
        costs(args.costs, console)


if __name__ == "__main__":
    main()
