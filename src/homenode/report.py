"""Files a run leaves behind: CSV time series, the action log, summary.json, PNG plots.

Everything but ``sim_speed`` (and the wall time behind it) is deterministic: two runs of
the same scenario and seed write the same bytes.  Files are written to a temporary name
and renamed, so an interrupted run never leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from homenode.metrics import RunRecorder
from homenode.units import pages_to_mib

TIMESERIES = "timeseries.csv"
NODES = "nodes.csv"
ACTIONS = "actions.csv"
DECISIONS = "decisions.jsonl"
SUMMARY = "summary.json"
# Every file a run may write: a new run into the same folder removes them all first, so
# that a folder never mixes two runs (a --no-plots run beside an older run's plots).
RUN_FILES = (TIMESERIES, NODES, ACTIONS, DECISIONS, SUMMARY, "locality.png", "load.png",
             "locality_heatmap.png", "home_heatmap.png", "report.html")
COMPARE_MARK = "compare.json"


def check_out(out: Path) -> None:
    """Refuse a folder that holds a comparison: a run there would orphan its per-policy
    runs.  (Called before a run starts, and again before its files are written.)"""
    from homenode.errors import InputError
    if (out / COMPARE_MARK).exists():
        raise InputError("--out", str(out), "holds a comparison (compare.json); give a "
                         "folder of its own")


def clear_run(out: Path) -> None:
    """Make ``out`` ready for one run: remove an earlier run's files."""
    check_out(out)
    for name in RUN_FILES:
        with contextlib.suppress(FileNotFoundError):
            (out / name).unlink()


def write_atomic(path: Path, data: str | bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(tmp, mode) as f:
        f.write(data)
    os.replace(tmp, path)


def _csv(rows: list[list[Any]], header: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def write_run(out: Path, rec: RunRecorder, summary: dict[str, Any], plots: bool = True) -> None:
    out.mkdir(parents=True, exist_ok=True)
    clear_run(out)
    rows = []
    for s in rec.samples:
        loc = s.locality
        prog = s.extra.get("progress")
        for k, cid in enumerate(s.ids):
            rows.append([f"{s.time:.3f}", cid, int(s.home[k]), int(s.nmig[k]),
                         f"{pages_to_mib(s.local[k]):.1f}",
                         f"{pages_to_mib(s.total[k] - s.local[k]):.1f}",
                         f"{loc[k]:.4f}", f"{s.demand[k]:.4f}", f"{s.received[k]:.4f}",
                         "" if prog is None else f"{prog[k]:.3f}"])
    write_atomic(out / TIMESERIES, _csv(rows, [
        "time_s", "client", "home", "nmig", "local_mib", "remote_mib", "locality",
        "cpu_demand", "cpu_received", "progress"]))
    nrows = []
    for s in rec.samples:
        for n in range(len(s.loads)):
            nrows.append([f"{s.time:.3f}", n, f"{s.loads[n]:.4f}", f"{s.used[n]:.4f}",
                          f"{pages_to_mib(s.free[n]):.1f}"])
    write_atomic(out / NODES, _csv(nrows, ["time_s", "node", "load", "cpu_used", "free_mib"]))
    arows = [[f"{a.time:.3f}", a.client, a.kind, a.src, a.dst, a.pages, a.reason,
              f"{a.score:.4f}", int(a.ok), a.detail] for a in rec.actions]
    write_atomic(out / ACTIONS, _csv(arows, ["time_s", "client", "kind", "src", "dst", "pages",
                                              "reason", "score", "ok", "detail"]))
    write_atomic(out / DECISIONS, "".join(json.dumps(d, sort_keys=True) + "\n"
                                          for d in rec.decisions))
    write_atomic(out / SUMMARY, json.dumps(summary, indent=2, sort_keys=False) + "\n")
    if plots and rec.samples:
        plot_run(out, rec, summary)


def plot_run(out: Path, rec: RunRecorder, summary: dict[str, Any]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    title = f"{summary['scenario']} / {summary['policy']} (seed {summary['seed']})"
    series: dict[str, tuple[list[float], list[float]]] = {}
    for s in rec.samples:
        loc = s.locality
        for k, cid in enumerate(s.ids):
            xs, ys = series.setdefault(cid, ([], []))
            xs.append(s.time)
            ys.append(100.0 * loc[k])
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for cid, (xs, ys) in series.items():
        ax.plot(xs, ys, lw=0.8, alpha=0.7, label=cid if len(series) <= 16 else None)
    ax.set(title=f"Memory locality per client — {title}", xlabel="time (s)",
           ylabel="local memory (%)", ylim=(0, 102))
    if len(series) <= 16:
        ax.legend(fontsize=6, ncol=4, loc="lower right")
    fig.tight_layout()
    _save(fig, out / "locality.png")

    fig, ax = plt.subplots(figsize=(9, 4.5))
    t = [s.time for s in rec.samples]
    n_nodes = len(rec.samples[0].loads)
    for n in range(n_nodes):
        ax.plot(t, [100.0 * s.loads[n] if n < len(s.loads) else 0 for s in rec.samples],
                lw=1, label=f"node {n}")
    ax.set(title=f"CPU load per node (entitled) — {title}", xlabel="time (s)",
           ylabel="load (% of cores)")
    ax.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    _save(fig, out / "load.png")
    plt.close("all")


def _save(fig: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp.png")
    # A fixed metadata block keeps the PNG bytes the same from run to run.
    fig.savefig(tmp, dpi=100, metadata={"Software": None})
    os.replace(tmp, path)
