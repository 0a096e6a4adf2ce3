"""``DIR/report.html`` of a sweep: self-contained like the other reports (ops.html):
inline CSS and SVG, no script, no network.

* wins / ties / losses of each policy against each peer, with the worst ratio and its case;
* distributions over the cases, per policy (ECDF plots and quantiles): throughput vs the
  upper bound (or vs ideal, said so, when the summaries lack the bound), home changes per
  client per 10 minutes, GiB copied;
* a heatmap of esxi / best peer (the best non-oracle policy) by day x host shape;
* how loaded the cases' hosts were, and the failed cases.
"""

from __future__ import annotations

from collections import defaultdict
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from homenode.ops.html import page
from homenode.ops.svg import PALETTE, Series, legend, line_chart
from homenode.report import write_atomic
from homenode.sweep import wins

REPORT = "report.html"
FAILED_ROWS_MAX = 200
HEAT_SPAN = 0.10            # a ratio this far from 1 gets the full colour
QUANTILES = (("min", 0), ("p5", 5), ("median", 50), ("p95", 95), ("max", 100))
EXTRA_CSS = """<style>
td.heat{min-width:54px;text-align:center}td.l,th.l{text-align:left}
table{margin-bottom:14px}.good{color:#1a7f37}.bad{color:#b42318}
.note{background:#fff7e0;border:1px solid #eed;padding:6px 10px}
</style>"""
DISTRIBUTIONS = (
    ("home_changes_per_client_per_10min", "Home changes per client per 10 min",
     "home changes / client / 10 min"),
    ("gib_migrated", "Memory copied", "GiB copied"),
)


def render(name: str, table: list[dict[str, Any]]) -> str:
    key = wins.metric(table)
    ok = [r for r in table if r.get("status") == "ok"]
    failed = [r for r in table if r.get("status") != "ok"]
    title = f"homenode sweep: {name}"
    sub = (f"{len(table)} cases: {len(ok)} ok, {len(failed)} failed; "
           f"{len({wins.instance(r) for r in table})} instances")
    body = [EXTRA_CSS, f"<h1>{escape(title)}</h1><p class=sub>{escape(sub)}</p>"]
    if key == wins.IDEAL:
        body.append("<p class=note>The summaries have no <code>throughput_vs_bound</code>: "
                    "throughput is compared <b>vs ideal</b> (demand fully met), which a "
                    "host short of cores can never reach.</p>")
    body += ["<h2>Wins, ties and losses</h2>",
             f"<p class=sub>By {escape(key)}, case by case; a tie is within "
             f"{100 * wins.TIE:g} %. Ratio = policy / peer.</p>", _tally_table(table, key)]
    body += ["<h2>Distributions over the cases</h2>",
             _distribution(ok, key, f"Throughput ({key.replace('_', ' ')})", key)]
    body += [_distribution(ok, k, what, label) for k, what, label in DISTRIBUTIONS]
    body += ["<h2>esxi ÷ best peer, by day and host shape</h2>",
             "<p class=sub>Best peer: the best of the non-oracle policies on each case "
             f"({escape(', '.join(wins.ORACLES))} left out); cell = the mean over groups, "
             "seeds and settings; green: esxi ahead.</p>", _heatmap(table, key)]
    body += ["<h2>How loaded the hosts were</h2>", _load_table(table)]
    if failed:
        body += [f"<h2>Failed cases: {len(failed)}</h2>", _failed(failed)]
    return page(title, body)


def _tally_table(table: list[dict[str, Any]], key: str) -> str:
    rows = "".join(
        f"<tr><td>{escape(t.policy)}</td><td>{escape(t.peer)}</td><td>{t.wins}</td>"
        f"<td>{t.ties}</td><td>{t.losses}</td><td>{_num(t.worst_ratio)}</td>"
        f"<td class=l>{escape(t.worst_case)}</td></tr>" for t in wins.tallies(table, key))
    return ("<table><tr><th>policy</th><th>peer</th><th>wins</th><th>ties</th><th>losses</th>"
            f"<th>worst ratio</th><th class=l>worst case</th></tr>{rows}</table>")


def _num(v: float | None) -> str:
    return "—" if v is None else f"{v:.4f}"


def _by_policy(ok: list[dict[str, Any]], key: str) -> dict[str, np.ndarray]:
    vals: dict[str, list[float]] = defaultdict(list)
    for r in ok:
        if r.get(key) is not None:
            vals[r["policy"]].append(float(r[key]))
    return {p: np.sort(np.array(vals[p])) for p in wins._order(set(vals))}


def _distribution(ok: list[dict[str, Any]], key: str, what: str, xlabel: str) -> str:
    data = _by_policy(ok, key)
    series = [Series(p, v, (np.arange(v.size) + 1) / v.size, PALETTE[k % len(PALETTE)], 1.8,
                     step=True) for k, (p, v) in enumerate(data.items())]
    chart = line_chart(series, title=f"{what}: share of cases at or below",
                       xlabel=xlabel, ylabel="share of cases", ylim=(0, 1),
                       plot_id=f"dist-{key.replace('_', '-')}", height=260)
    head = "".join(f"<th>{n}</th>" for n, _ in QUANTILES)
    rows = "".join(f"<tr><td>{escape(p)}</td><td>{v.size}</td>"
                   + "".join(f"<td>{np.percentile(v, q):.4g}</td>" for _, q in QUANTILES)
                   + f"<td>{v.mean():.4g}</td></tr>" for p, v in data.items() if v.size)
    return (chart + legend(series) + f"<table><tr><th>policy</th><th>cases</th>{head}"
            f"<th>mean</th></tr>{rows}</table>")


def _heatmap(table: list[dict[str, Any]], key: str) -> str:
    inst = wins.by_instance(table, key)
    meta = {wins.instance(r): r for r in table}
    cells: dict[tuple[str, str], list[float]] = defaultdict(list)
    for name, vals in inst.items():
        ratio = wins.best_peer_ratio(vals)
        if ratio is None:
            continue
        r = meta[name]
        if r.get("family") == "traces":
            row, col = f"{r['set']} day {r['day']:02d}", r["shape"]
        else:
            row, col = r["label"], "own host"
        cells[(row, col)].append(ratio)
    if not cells:
        return "<p class=sub>No case has esxi and a peer both finished.</p>"
    rows = sorted({k[0] for k in cells})
    cols = sorted({k[1] for k in cells}, key=lambda c: (c == "own host", c))
    head = "".join(f"<th>{escape(c)}</th>" for c in cols)
    body = []
    for row in rows:
        tds = []
        for col in cols:
            v = cells.get((row, col))
            if not v:
                tds.append("<td class=heat>·</td>")
                continue
            m = float(np.mean(v))
            tds.append(f'<td class=heat style="background:{_colour(m)}" '
                       f'title="{len(v)} case(s)">{m:.3f}</td>')
        body.append(f"<tr><td>{escape(row)}</td>{''.join(tds)}</tr>")
    return f"<table><tr><th>day / scenario</th>{head}</tr>{''.join(body)}</table>"


def _colour(ratio: float) -> str:
    """White at 1, green above, red below, saturating at HEAT_SPAN away from 1."""
    f = max(-1.0, min(1.0, (ratio - 1) / HEAT_SPAN))
    if f >= 0:
        r, g, b = 255 - int(150 * f), 255 - int(40 * f), 255 - int(150 * f)
    else:
        r, g, b = 255 + int(10 * f), 255 + int(150 * f), 255 + int(150 * f)
    return f"#{r:02x}{g:02x}{b:02x}"


def _load_table(table: list[dict[str, Any]]) -> str:
    hosts: dict[str, set[tuple[str, float, float]]] = defaultdict(set)
    for r in table:
        if r.get("family") == "traces" and r.get("demand_mean_share") is not None:
            hosts[f"{r['set']} on {r['shape']}"].add(
                (r["label"], r["demand_mean_share"], r["demand_peak_share"]))
    if not hosts:
        return "<p class=sub>No trace cases.</p>"
    rows = []
    for name in sorted(hosts):
        mean = np.array([h[1] for h in hosts[name]])
        peak = np.array([h[2] for h in hosts[name]])
        rows.append(f"<tr><td>{escape(name)}</td><td>{mean.size}</td>"
                    f"<td>{np.median(mean):.2f}</td><td>{mean.min():.2f}–{mean.max():.2f}</td>"
                    f"<td>{np.median(peak):.2f}</td><td>{(peak > 1).mean():.0%}</td></tr>")
    return ("<p class=sub>Demand as a share of the host's cores, per host-day.</p><table><tr>"
            "<th>trace set on shape</th><th>host-days</th><th>mean (median)</th>"
            "<th>mean (range)</th><th>peak (median)</th><th>peak above cores</th></tr>"
            + "".join(rows) + "</table>")


def _failed(failed: list[dict[str, Any]]) -> str:
    rows = "".join(f"<tr><td>{escape(wins.instance(r))}</td><td>{escape(r['policy'])}</td>"
                   f"<td class=l>{escape(str(r.get('error', '')))}</td></tr>"
                   for r in failed[:FAILED_ROWS_MAX])
    return (f"<table><tr><th>case</th><th>policy</th><th class=l>error</th></tr>{rows}"
            "</table>")


def write(out: Path, name: str, table: list[dict[str, Any]]) -> Path:
    path = Path(out) / REPORT
    write_atomic(path, render(name, table))
    return path
