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

import numpy as np

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


LINES_MAX = 12    # per-client locality lines up to this many clients; past it the spread


def _events(summary: dict[str, Any]) -> list[float]:
    conv = summary.get("convergence_s")
    return [float(c["at_s"]) for c in conv if isinstance(c, dict)] \
        if isinstance(conv, list) else []


def _mark(ax: Any, events: list[float]) -> None:
    for t in events:
        ax.axvline(t, color="#555", ls="--", lw=0.8, zorder=0)


def plot_run(out: Path, rec: RunRecorder, summary: dict[str, Any]) -> None:
    """locality.png and load.png (scenario events dashed), and the client x time heatmaps
    locality_heatmap.png and home_heatmap.png, which stay readable with hundreds of
    clients."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import BoundaryNorm, ListedColormap

    title = f"{summary['scenario']} / {summary['policy']} (seed {summary['seed']})"
    events = _events(summary)
    times = [s.time for s in rec.samples]
    ids = sorted({cid for s in rec.samples for cid in s.ids})
    col = {cid: k for k, cid in enumerate(ids)}
    loc = np.full((len(times), len(ids)), np.nan)
    home = np.full((len(times), len(ids)), np.nan)
    for i, s in enumerate(rec.samples):
        ks = [col[c] for c in s.ids]
        loc[i, ks] = s.locality
        home[i, ks] = np.where(s.home >= 0, s.home, np.nan)
    loc *= 100.0

    fig, ax = plt.subplots(figsize=(9, 4.5))
    if len(ids) <= LINES_MAX:
        for k, cid in enumerate(ids):
            ax.plot(times, loc[:, k], lw=0.9, alpha=0.8, label=cid)
    else:
        with np.errstate(all="ignore"):
            ax.plot(times, np.nanpercentile(loc, 5, axis=1), lw=1.2, color="#f28e2b",
                    label="5th percentile of clients")
            ax.plot(times, np.nanmin(loc, axis=1), lw=1.2, color="#e15759",
                    label="least local client")
    ax.plot(times, [100.0 * float(s.local.sum()) / max(float(s.total.sum()), 1.0)
                    for s in rec.samples], lw=2.2, color="#111", label="host (memory-weighted)")
    _mark(ax, events)
    ax.set(title=f"Memory locality — {title}", xlabel="time (s)", ylabel="local memory (%)",
           ylim=(0, 102))
    ax.legend(fontsize=7, ncol=4, loc="lower right")
    fig.tight_layout()
    _save(fig, out / "locality.png")

    fig, ax = plt.subplots(figsize=(9, 4.5))
    n_nodes = len(rec.samples[0].loads)
    for n in range(n_nodes):
        ax.plot(times, [100.0 * s.loads[n] if n < len(s.loads) else 0 for s in rec.samples],
                lw=1, label=f"node {n}")
    _mark(ax, events)
    ax.set(title=f"CPU load per node (entitled) — {title}", xlabel="time (s)",
           ylabel="load (% of cores)")
    ax.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    _save(fig, out / "load.png")

    extent = (times[0], times[-1] if len(times) > 1 else times[0] + 1, len(ids) - 0.5, -0.5)
    height = min(12.0, 2.0 + 0.12 * len(ids))
    from homenode.ops.svg import ABSENT, LOCALITY_STEPS, PALETTE

    steps = ListedColormap(list(LOCALITY_STEPS)).with_extremes(bad=ABSENT)
    fig, ax = plt.subplots(figsize=(9, height))
    im = ax.imshow(loc.T, aspect="auto", interpolation="nearest", extent=extent, cmap=steps,
                   norm=BoundaryNorm(np.linspace(0, 100, 11), steps.N))
    fig.colorbar(im, ax=ax, label="local memory (%)", ticks=range(0, 101, 20))
    _rows(ax, ids)
    _mark(ax, events)
    ax.set(title=f"Locality per client — {title}", xlabel="time (s)")
    fig.tight_layout()
    _save(fig, out / "locality_heatmap.png")

    nodes = ListedColormap([PALETTE[k % len(PALETTE)] for k in range(n_nodes)]).with_extremes(
        bad=ABSENT)
    fig, ax = plt.subplots(figsize=(9, height))
    im = ax.imshow(home.T, aspect="auto", interpolation="nearest", extent=extent, cmap=nodes,
                   norm=BoundaryNorm(np.arange(n_nodes + 1) - 0.5, n_nodes))
    bar = fig.colorbar(im, ax=ax, ticks=range(n_nodes))
    bar.set_label("home node")
    _rows(ax, ids)
    _mark(ax, events)
    ax.set(title=f"Home node per client — {title}", xlabel="time (s)")
    fig.tight_layout()
    _save(fig, out / "home_heatmap.png")
    plt.close("all")


def _rows(ax: Any, ids: list[str]) -> None:
    """Client names on the y axis while they fit; past that, every k-th."""
    every = max(1, len(ids) // 40)
    ax.set_yticks(range(0, len(ids), every), [ids[k] for k in range(0, len(ids), every)],
                  fontsize=6 if len(ids) > 16 else 8)
    ax.set_ylabel("client")


def _save(fig: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp.png")
    # A fixed metadata block keeps the PNG bytes the same from run to run.
    fig.savefig(tmp, dpi=100, metadata={"Software": None})
    os.replace(tmp, path)
