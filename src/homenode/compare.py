"""Several policies on one scenario, side by side: the job behind `homenode compare`.

Every (policy, seed) pair is one ``simulation.simulate`` run on the same scenario object,
so every policy sees the same clients, demand curves and seeds; the runs go to parallel
worker processes.  The result is the ``compare.json`` object

    {"scenario": NAME, "duration_s": ..., "seeds": [...],
     "policies": {POLICY: {<summary.json keys, numbers averaged over seeds>,
                           "per_seed": [<summary.json of each seed>], ...}}}

plus, for ``optimal``, ``"solver"`` (solves, time-outs, the largest proven gap, the
slowest solve, the MIP's time-weighted bound as a fraction of the demand it saw) and
``"required_gib"`` (what its final placement strictly required to copy).  ``compare.png``
overlays each metric's time series per policy (the mean over seeds).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from homenode.errors import InputError
from homenode.metrics import RunRecorder
from homenode.ops.html import write_report
from homenode.policy.optimal import OptimalPolicy, hints_for
from homenode.report import write_atomic
from homenode.settings import Settings
from homenode.sim.scenario import Scenario
from homenode.simulation import simulate
from homenode.units import PAGE_SIZE

DEFAULT_POLICIES = ("esxi", "static", "numad", "autonuma", "optimal")
COMPARE_JSON = "compare.json"
COMPARE_PNG = "compare.png"
SMOOTH_S = 10.0          # s: the throughput curve is a moving mean over this window
# Summary keys that are per-run facts rather than quantities to average.
NOT_AVERAGED = {"scenario", "policy", "seed", "convergence_s", "settings"}
SERIES = (("throughput", "throughput vs ideal (10 s mean)"), ("locality", "memory locality"),
          ("imbalance", "load imbalance (max - min)"), ("gib_migrated", "GiB migrated"))


@dataclass(frozen=True)
class Job:
    scenario: Scenario
    policy: str
    seed: int
    duration: float | None
    out: Path | None = None      # the run's own folder (DIR/POLICY or DIR/POLICY/seed-N)
    plots: bool = True


def run_dir(out: Path, policy: str, seed: int, seeds: int) -> Path:
    """Where one (policy, seed) run is written: DIR/POLICY, or DIR/POLICY/seed-N when
    there are several seeds."""
    return out / policy if seeds == 1 else out / policy / f"seed-{seed}"


def clear_compare(out: Path, policies: list[str]) -> None:
    """Make ``out`` ready for a comparison: refuse a folder holding a single run, and
    remove what an earlier comparison wrote there (its files and per-policy runs)."""
    if (out / "summary.json").exists():
        raise InputError("--out", str(out), "holds a simulate run (summary.json); give a "
                         "folder of its own")
    old = read_policies(out / COMPARE_JSON)
    for name in (COMPARE_JSON, COMPARE_PNG, "report.html"):
        with contextlib.suppress(FileNotFoundError):
            (out / name).unlink()
    for name in sorted({*policies, *old}):
        d = out / name
        if d.is_dir() and (any(d.glob("summary.json")) or any(d.glob("seed-*/summary.json"))):
            shutil.rmtree(d)


def read_policies(path: Path) -> list[str]:
    try:
        return list(json.loads(path.read_text()).get("policies", {}))
    except (OSError, ValueError, AttributeError):
        return []


def run_job(job: Job) -> dict[str, Any]:
    """One simulation; returns its summary, its time series and (optimal) solver stats."""
    made: list[OptimalPolicy] = []
    factory = None
    if job.policy == "optimal":
        hints = hints_for(job.scenario)

        def factory(cfg: Settings) -> OptimalPolicy:
            made.append(OptimalPolicy(cfg, hints))
            return made[-1]

    res = simulate(job.scenario, job.policy, seed=job.seed, duration=job.duration,
                   factory=factory, out=job.out, plots=job.plots)
    if job.out is not None and job.plots:
        write_report(job.out)          # each policy's run is a run folder like any other
    out: dict[str, Any] = {"summary": res.summary, "series": series(res.recorder)}
    if made:
        out["solver"] = solver_stats(made[0], res.summary["duration_s"])
        out["required_gib"] = round(made[0].required_pages() * PAGE_SIZE / 2**30, 4)
    return out


def series(rec: RunRecorder) -> dict[str, list[float]]:
    """Per sample: windowed throughput vs ideal, locality, imbalance, GiB migrated so far."""
    t, thr, loc, imb, mig = [], [], [], [], []
    prev: dict[str, tuple[float, float, float]] = {}
    migrated = 0.0
    for s in rec.samples:
        prog, ideal, moved = (s.extra.get(k) for k in ("progress", "ideal", "migrated"))
        dp = di = 0.0
        now: dict[str, tuple[float, float, float]] = {}
        for k, cid in enumerate(s.ids):
            cur = (float(prog[k]), float(ideal[k]), float(moved[k])) if prog is not None \
                else (0.0, 0.0, 0.0)
            now[cid] = cur
            p = prev.get(cid, (0.0, 0.0, 0.0))
            dp += cur[0] - p[0]
            di += cur[1] - p[1]
            migrated += cur[2] - p[2]
        prev = now
        total = float(s.total.sum())
        t.append(s.time)
        thr.append(dp / di if di > 0 else 1.0)
        loc.append(float(s.local.sum()) / total if total > 0 else 1.0)
        imb.append(float(s.imbalance))
        mig.append(migrated * PAGE_SIZE / 2**30)
    return {"time": t, "throughput": _smooth(t, thr), "locality": loc, "imbalance": imb,
            "gib_migrated": mig}


def _smooth(t: list[float], y: list[float]) -> list[float]:
    if len(t) < 2:
        return y
    step = max((t[-1] - t[0]) / (len(t) - 1), 1e-9)
    k = max(1, round(SMOOTH_S / step))
    a = np.asarray(y, float)
    c = np.cumsum(np.insert(a, 0, 0.0))
    lo = np.maximum(np.arange(a.size) - k + 1, 0)
    return ((c[1:] - c[lo]) / (np.arange(a.size) - lo + 1)).tolist()


def solver_stats(pol: OptimalPolicy, duration: float) -> dict[str, Any]:
    st = pol.stats
    if not st:
        return {"solves": 0}
    times = [s.time for s in st] + [duration]
    dt = np.diff(times)
    bound = sum(s.bound * w for s, w in zip(st, dt, strict=True) if np.isfinite(s.bound))
    want = sum(s.want * w for s, w in zip(st, dt, strict=True))
    return {
        "solves": len(st),
        "timeouts": sum(s.timed_out for s in st),
        "no_solution": sum(not np.isfinite(s.progress) for s in st),
        "max_gap": max((round(s.gap, 8) for s in st if np.isfinite(s.gap)), default=None),
        "max_solve_s": round(max(s.seconds for s in st), 4),
        "median_solve_s": round(float(np.median([s.seconds for s in st])), 4),
        "bound_vs_demand": round(min(bound / want, 1.0), 4) if want > 0 else None,
    }


def average(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Numbers averaged over seeds (None if any seed has None); the rest from seed 0."""
    out: dict[str, Any] = {}
    for key, v0 in summaries[0].items():
        vals = [s.get(key) for s in summaries]
        if key == "seed":
            out["seeds"] = vals
        elif key in NOT_AVERAGED:
            if key != "convergence_s":
                out[key] = v0
        elif isinstance(v0, dict):
            keys = sorted({k for v in vals for k in (v or {})})
            out[key] = {k: _mean([(v or {}).get(k, 0) for v in vals]) for k in keys}
        elif (isinstance(v0, int | float) and not isinstance(v0, bool)) or v0 is None:
            out[key] = _mean(vals)
        else:
            out[key] = v0
    return out


def _mean(vals: list[Any]) -> float | None:
    if any(v is None for v in vals):
        return None
    return round(float(np.mean(vals)), 4)


def run(sc: Scenario, policies: list[str], seeds: int = 1, *, out: Path | None = None,
        duration: float | None = None, jobs: int | None = None, plots: bool = True,
        on_done: Callable[[str, int], None] | None = None) -> dict[str, Any]:
    """Run every policy on every seed; returns (and writes to ``out``) compare.json."""
    seed_list = [sc.seed + k for k in range(seeds)]
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        clear_compare(out, policies)
    work = [Job(sc, p, s, duration,
                None if out is None else run_dir(out, p, s, seeds), plots)
            for p in policies for s in seed_list]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(work)))
    results: dict[tuple[str, int], dict[str, Any]] = {}
    if jobs == 1:
        for job in work:
            results[(job.policy, job.seed)] = run_job(job)
            if on_done:
                on_done(job.policy, job.seed)
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(run_job, job): job for job in work}
            for fut, job in futures.items():
                results[(job.policy, job.seed)] = fut.result()
                if on_done:
                    on_done(job.policy, job.seed)
    doc: dict[str, Any] = {"scenario": sc.name,
                           "duration_s": duration if duration is not None else sc.duration,
                           "seeds": seed_list, "policies": {}}
    curves: dict[str, dict[str, list[float]]] = {}
    for p in policies:
        per = [results[(p, s)] for s in seed_list]
        entry = average([r["summary"] for r in per])
        entry["per_seed"] = [r["summary"] for r in per]
        if "solver" in per[0]:
            entry["solver"] = {k: _worst(k, [r["solver"].get(k) for r in per])
                               for k in per[0]["solver"]}
            entry["required_gib"] = _mean([r["required_gib"] for r in per])
        curves[p] = _mean_series([r["series"] for r in per])
        # The mean series over seeds, so `homenode report DIR` redraws the same overlays.
        entry["series"] = {k: [round(x, 6) for x in v] for k, v in curves[p].items()}
        doc["policies"][p] = entry
    if out is not None:
        write_atomic(out / COMPARE_JSON, json.dumps(doc, indent=2) + "\n")
        if plots:
            plot(out / COMPARE_PNG, sc.name, curves)
            write_report(out)
    return doc


def _worst(key: str, vals: list[Any]) -> Any:
    """Solver figures over seeds: counts add up, times and gaps take the worst, the
    bound its mean."""
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    if key in ("solves", "timeouts", "no_solution"):
        return int(sum(vals))
    if key == "bound_vs_demand":
        return round(float(np.mean(vals)), 4)
    return max(vals)


def _mean_series(runs: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    n = min(len(r["time"]) for r in runs)
    return {k: np.mean([r[k][:n] for r in runs], axis=0).tolist() for k in runs[0]}


def plot(path: Path, scenario: str, curves: dict[str, dict[str, list[float]]]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 7), sharex=True)
    for ax, (key, label) in zip(axes.ravel(), SERIES, strict=True):
        for policy, c in curves.items():
            ax.plot(c["time"], c[key], lw=1.0, label=policy)
        ax.set(title=label, xlabel="time (s)")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"{scenario}: policies compared")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100, metadata={"Software": None})
    os.replace(tmp, path)
    plt.close(fig)
