"""The self-contained HTML report of a `simulate` or `compare` run: `report.html`.

One file, no scripts, no fonts, no CDN: CSS and the plots (inline SVG, see ``svg``) are
in the page, so it opens from a mail attachment on a machine with no network.

* a run (``simulate``, or ``run --out``): the summary table, then memory locality
  (per client, and the host's memory-weighted mean), CPU load per node, free memory per
  node, home changes by reason and remote memory over time, and the home changes;
* a comparison (a directory with compare.json): the summary table with one column per
  policy, the same series overlaid per policy, and each policy's node loads.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from homenode import summarykeys
from homenode.errors import InputError
from homenode.ops import rundata
from homenode.ops.svg import (
    PALETTE,
    Series,
    heatmap,
    home_color,
    legend,
    line_chart,
    locality_color,
    locality_scale,
)
from homenode.report import write_atomic

REPORT = "report.html"
# Up to this many clients the locality plot has one line each (with a legend); past it,
# the mean, the 5th percentile and the least local client, and the heatmaps show who.
CLIENT_LINES_MAX_READABLE = 12
ACTION_ROWS_MAX = 300     # home changes listed in the run report's table
# summary.json keys shown first, in this order; the rest follow as they come.
SUMMARY_KEYS = ("scenario", "policy", "seed", "duration_s", "sim_speed", "throughput_vs_ideal",
                "mean_locality", "p5_locality", "max_imbalance_settled", "convergence_max_s",
                "home_changes", "max_home_changes_per_client_per_10min", "gib_migrated",
                "pages_migrated", "clients_seen")

CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;
max-width:940px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid
#ddd;padding-bottom:4px}.sub{color:#666;margin:0 0 16px}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
td,th{border-bottom:1px solid #e4e4e4;padding:3px 10px;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f4f4f4}
svg.plot{display:block;max-width:100%;height:auto}svg .title{font:600 14px sans-serif}
svg .tick{font:11px sans-serif;fill:#555}svg .axis{font:12px sans-serif;fill:#333}
svg .frame{fill:#fcfcfc;stroke:#bbb}svg .grid{stroke:#e8e8e8}svg .empty{fill:#999}
.legend{margin:2px 0 14px 62px;font-size:12px}.key{margin-right:14px;white-space:nowrap}
.key i{display:inline-block;width:14px;height:3px;vertical-align:middle;margin-right:4px}
details{margin:8px 0}summary{cursor:pointer;color:#335}
svg .event{stroke:#555;stroke-dasharray:4 3;stroke-width:1}
td.unit,td.meaning{color:#666;text-align:left;font-size:12px}th.unit,th.meaning{text-align:left}
td.unit{white-space:nowrap}
"""


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list | dict):
        return escape(_compact(v))
    return escape(str(v))


def _compact(v: Any) -> str:
    if isinstance(v, list) and all(isinstance(x, dict) and "seconds" in x for x in v):
        return ", ".join(f"{x.get('at_s')}s→{_fmt(x['seconds'])}" for x in v) or "—"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_compact(x) if isinstance(x, list | dict) else x}"
                         for k, x in v.items()) or "—"
    return ", ".join(str(x) for x in v)


def _keys(summaries: list[dict[str, Any]]) -> list[str]:
    seen = [k for k in SUMMARY_KEYS if any(k in s for s in summaries)]
    for s in summaries:
        seen += [k for k in s if k not in seen and k not in ("per_seed", "series")]
    return seen


def summary_table(cols: dict[str, dict[str, Any]]) -> str:
    """Rows = summary keys, one column per run (one column for a single run)."""
    keys = _keys(list(cols.values()))
    head = "".join(f"<th>{escape(c)}</th>" for c in cols)

    def row(k: str) -> str:
        ki = summarykeys.info(k)
        unit, meaning = (ki.unit, ki.meaning) if ki else ("", "")
        return (f"<tr><td>{escape(k)}</td>"
                + "".join(f"<td>{_fmt(s.get(k))}</td>" for s in cols.values())
                + f'<td class="unit">{escape(unit)}</td>'
                  f'<td class="meaning">{escape(meaning)}</td></tr>')
    return (f'<table class="summary"><tr><th>metric</th>{head}<th class="unit">unit</th>'
            f'<th class="meaning">meaning</th></tr>{"".join(row(k) for k in keys)}</table>')


def _figure(series: list[Series], key: bool = True, keys: list[Series] | None = None,
            **kw: Any) -> str:
    keys = series if keys is None else keys
    return line_chart(series, **kw) + (legend(keys) if key and keys else "")


# --- one run ------------------------------------------------------------------------------------

def run_plots(run: rundata.RunData, prefix: str = "") -> list[str]:
    t = run.times
    ev = run.events()
    mean = Series("host (memory-weighted)", t, 100 * run.mean_locality(), "#111", 2.5)
    if len(run.clients) <= CLIENT_LINES_MAX_READABLE:
        clients = [Series(c, t, 100 * run.locality[:, k], PALETTE[k % len(PALETTE)], 0.8)
                   for k, c in enumerate(run.clients)]
        loc_series, loc_keys = [*clients, mean], [mean, *clients]
    else:
        # Past a dozen clients one line each is a tangle: the spread instead, and the
        # heatmap below for who is where.
        with np.errstate(all="ignore"):
            worst = np.nanmin(np.where(np.isnan(run.locality), np.inf, run.locality), axis=1)
            p5 = np.nanpercentile(run.locality, 5, axis=1)
        worst = np.where(np.isfinite(worst), worst, np.nan)
        spread = [Series("least local client", t, 100 * worst, PALETTE[2], 1.2),
                  Series("5th percentile of clients", t, 100 * p5, PALETTE[1], 1.2)]
        loc_series = loc_keys = [mean, *spread]
    nodes = [Series(f"node {n}", t, 100 * run.load[:, k]) for k, n in enumerate(run.nodes)]
    free = [Series(f"node {n}", t, run.free_mib[:, k] / 1024) for k, n in enumerate(run.nodes)]
    _, by_reason = run.home_changes()
    moves = [Series(r, t, c, step=True) for r, c in by_reason.items()]
    mem = [Series("remote memory (all clients)", t, run.remote_gib(), PALETTE[2]),
           Series("migration granted (cumulative)", t, run.pages_granted_gib(), PALETTE[0],
                  step=True)]
    title = f"{run.summary.get('scenario', '')} / {run.label}"
    out = [
        _figure(loc_series, keys=loc_keys, plot_id=f"{prefix}locality",
                title=f"Memory locality — {title}", xlabel="time (s)",
                ylabel="local memory (%)", ylim=(0, 100), events=ev),
        *heatmaps(run, prefix, title),
        _figure(nodes, plot_id=f"{prefix}load", title=f"CPU load per node (entitled) — {title}",
                xlabel="time (s)", ylabel="load (% of cores)", ylim=(0, None), events=ev),
        _figure(free, plot_id=f"{prefix}free", title=f"Free memory per node — {title}",
                xlabel="time (s)", ylabel="free (GiB)", ylim=(0, None), events=ev),
        _figure(moves, plot_id=f"{prefix}moves", title=f"Home changes by reason — {title}",
                xlabel="time (s)", ylabel="home changes (cumulative)", ylim=(0, None),
                events=ev),
        _figure(mem, plot_id=f"{prefix}migration", title=f"Memory migration — {title}",
                xlabel="time (s)", ylabel="GiB", ylim=(0, None), events=ev),
    ]
    if ev:
        out.insert(0, "<p class=sub>Dashed vertical lines mark the scenario's events "
                   "(starts, stops, demand changes).</p>")
    return out


def heatmaps(run: rundata.RunData, prefix: str, title: str) -> list[str]:
    """Client x time: locality, and the home node (where every client lives, when it moved)."""
    ev = run.events()
    out = [heatmap(run.clients, run.times, run.locality, locality_color,
                   title=f"Locality per client — {title}", plot_id=f"{prefix}heat-locality",
                   scale=locality_scale(), events=ev, worst=True)]
    if run.home is not None:
        index = run.nodes or sorted({int(h) for h in run.home[np.isfinite(run.home)]})
        out.append(heatmap(run.clients, run.times, run.home, home_color,
                           title=f"Home node per client — {title}",
                           plot_id=f"{prefix}heat-home",
                           scale=[(home_color(k), f"node {n}") for k, n in enumerate(index)],
                           events=ev, worst=False))
    return out


def _actions_table(run: rundata.RunData) -> str:
    rows = [a for a in run.actions if a["kind"] == "home"]
    shown = rows[:ACTION_ROWS_MAX]
    body = "".join(
        f"<tr><td>{a['time']:.1f}</td><td>{escape(a['client'])}</td><td>{a['src']}</td>"
        f"<td>{a['dst']}</td><td>{escape(a['reason'])}</td><td>{a['score']:.2f}</td>"
        f"<td>{'yes' if a['ok'] else 'no'}</td><td>{escape(a['detail'])}</td></tr>"
        for a in shown)
    more = f" (first {ACTION_ROWS_MAX} of {len(rows)})" if len(rows) > len(shown) else ""
    return (f"<details><summary>Home changes and placements: {len(rows)}{more}</summary>"
            f'<table class="actions"><tr><th>t (s)</th><th>client</th><th>from</th><th>to</th>'
            f"<th>reason</th><th>score</th><th>ok</th><th>detail</th></tr>{body}</table>"
            f"</details>")


def render_run(run: rundata.RunData) -> str:
    s = run.summary
    title = f"homenode run: {s.get('scenario', run.path.name)} / {run.label}"
    sub = (f"seed {s.get('seed', '—')}, {s.get('duration_s', '—')} s, "
           f"{len(run.clients)} clients on {len(run.nodes)} nodes")
    body = [f"<h1>{escape(title)}</h1><p class=sub>{escape(sub)}</p>",
            "<h2>Summary</h2>", summary_table({run.label: s}), "<h2>Over time</h2>",
            *run_plots(run), "<h2>Actions</h2>", _actions_table(run)]
    return page(title, body)


# --- a comparison ------------------------------------------------------------------------------

# The overlaid series of a comparison: (key, title, y label, scale, y limits).  A policy's
# curves come from its run directory or from compare.json's ``series``; keys it lacks
# are skipped.
OVERLAYS = (
    ("locality", "Memory locality (memory-weighted)", "local memory (%)", 100.0, (0, 100)),
    ("throughput", "Throughput vs ideal", "progress / ideal", 1.0, (0, None)),
    ("imbalance", "Node load imbalance (max − min)", "imbalance (% of cores)", 100.0,
     (0, None)),
    ("home_changes", "Home changes (cumulative)", "home changes", 1.0, (0, None)),
    ("gib_migrated", "Memory migrated (cumulative)", "GiB", 1.0, (0, None)),
    ("remote_gib", "Remote memory, all clients", "GiB", 1.0, (0, None)),
)


def run_curves(run: rundata.RunData) -> dict[str, Any]:
    """One run's series in the shape ``compare.series`` uses, plus node loads."""
    _, by_reason = run.home_changes()
    return {"time": run.times, "locality": run.mean_locality(), "imbalance": run.imbalance(),
            "home_changes": sum(by_reason.values(), np.zeros(len(run.times))),
            "gib_migrated": run.pages_granted_gib(), "remote_gib": run.remote_gib(),
            "loads": run.load, "nodes": run.nodes}


def render_compare(doc: dict[str, Any], curves: dict[str, dict[str, Any]],
                   runs: dict[str, rundata.RunData] | None = None) -> str:
    """The comparison page: the summary table, and each series overlaid per policy."""
    scenario = str(doc.get("scenario", ""))
    title = f"homenode compare: {scenario}"
    policies = doc["policies"]
    cols = {name: (s if isinstance(s, dict) else {}) for name, s in policies.items()}
    body = [f"<h1>{escape(title)}</h1><p class=sub>{escape(', '.join(policies))}</p>",
            "<h2>Summary</h2>", summary_table(cols)]
    missing = [n for n in policies if n not in curves]
    if missing:
        body.append(f"<p class=sub>No time series found for: {escape(', '.join(missing))}"
                    "</p>")
    ev = _compare_events(policies)
    if curves:
        body.append("<h2>Over time, per policy</h2>")
    for key, what, ylabel, scale, ylim in OVERLAYS:
        series = [Series(name, np.asarray(c["time"], float),
                         scale * np.asarray(c[key], float), PALETTE[k % len(PALETTE)], 1.8)
                  for k, (name, c) in enumerate(curves.items()) if key in c]
        if series:
            body.append(_figure(series, plot_id=f"cmp-{key.replace('_', '-')}",
                                title=f"{what} — {scenario}", xlabel="time (s)",
                                ylabel=ylabel, ylim=ylim, events=ev))
    with_loads = [(name, c) for name, c in curves.items() if "loads" in c]
    if with_loads:
        body.append("<h2>Node load, per policy</h2>")
    for k, (name, c) in enumerate(with_loads):
        loads = np.asarray(c["loads"], float).reshape(len(c["time"]), -1)
        nodes = c.get("nodes") or list(range(loads.shape[1]))
        body.append(_figure([Series(f"node {n}", np.asarray(c["time"], float),
                                    100 * loads[:, j]) for j, n in enumerate(nodes)],
                            plot_id=f"cmp-load-{k}", title=f"CPU load per node — {name}",
                            xlabel="time (s)", ylabel="load (% of cores)", ylim=(0, None),
                            height=220, events=ev))
    for k, (name, r) in enumerate((runs or {}).items()):
        body.append(f"<details><summary>All plots of {escape(name)}</summary>"
                    + "".join(run_plots(r, prefix=f"p{k}-")) + "</details>")
    return page(title, body)


def _compare_events(policies: dict[str, Any]) -> list[float]:
    """The scenario's event times, from the first policy's summary (all saw the same)."""
    for entry in policies.values():
        if not isinstance(entry, dict):
            continue
        seeds = entry.get("per_seed")
        first = seeds[0] if isinstance(seeds, list) and seeds else entry
        conv = first.get("convergence_s") if isinstance(first, dict) else None
        if isinstance(conv, list):
            return [float(c["at_s"]) for c in conv if isinstance(c, dict)
                    and isinstance(c.get("at_s"), int | float)]
    return []


def page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            '<meta name=viewport content="width=device-width,initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


# --- entry point ----------------------------------------------------------------------------------

def render_dir(path: Path) -> str:
    """The report for a run directory or a compare directory."""
    path = Path(path)
    if not path.is_dir():
        raise InputError("DIR", str(path), "no such directory")
    if (path / rundata.COMPARE).is_file():
        doc, dirs = rundata.compare_runs(path)
        runs = {n: rundata.load_run(d) for n, d in dirs.items() if d is not None}
        curves = {n: run_curves(r) for n, r in runs.items()}
        for name, entry in doc["policies"].items():
            # compare.json's series (the mean over seeds, with throughput) win over one
            # run's; the run adds what only it has (node loads).
            if isinstance(entry, dict) and isinstance(entry.get("series"), dict) and \
                    "time" in entry["series"]:
                curves[name] = {**curves.get(name, {}), **entry["series"]}
        return render_compare(doc, {n: curves[n] for n in doc["policies"] if n in curves},
                              runs)
    if not rundata.is_run_dir(path):
        raise InputError("DIR", str(path), "neither a run directory (summary.json, "
                         "timeseries.csv) nor a compare directory (compare.json)")
    return render_run(rundata.load_run(path))


def write_report(path: Path) -> Path:
    """Write ``DIR/report.html`` for the run or comparison in ``DIR``; returns its path."""
    html = render_dir(Path(path))
    out = Path(path) / REPORT
    write_atomic(out, html)
    return out
