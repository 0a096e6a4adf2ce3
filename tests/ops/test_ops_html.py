"""The HTML report: self-contained, deterministic, and drawn by a real browser."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from ops_chromium import Browser, find_chromium

from homenode.cli import main
from homenode.errors import InputError
from homenode.ops import rundata
from homenode.ops.html import REPORT, render_dir, write_report
from homenode.ops.svg import LOCALITY_STEPS, MAX_POINTS, PALETTE, decimate, nice_ticks
from homenode.sim import scenario as scenarios
from homenode.simulation import simulate

RUN_PLOTS = ("locality", "heat-locality", "heat-home", "load", "free", "moves", "migration")
CMP_PLOTS = ("cmp-locality", "cmp-imbalance", "cmp-home-changes", "cmp-gib-migrated",
             "cmp-remote-gib")
INK_MIN = 40          # palette-coloured pixels a drawn plot has at least
COLOR_TOLERANCE = 24  # per channel: anti-aliasing shifts a line's edge pixels


@pytest.fixture(scope="module")
def compare_dir(shift_out, tmp_path_factory) -> Path:
    """A compare directory: esxi (the shared run) and esxi without page migration."""
    root = tmp_path_factory.mktemp("compare")
    shutil.copytree(shift_out, root / "esxi")
    nomig = root / "esxi-nomig" / "seed-1"
    simulate(scenarios.load("shift"), "esxi", duration=90.0, out=nomig, plots=False,
             settings={"page_mig_enable": "false"})
    policies = {name: json.loads((d / "summary.json").read_text())
                for name, d in (("esxi", root / "esxi"), ("esxi-nomig", nomig))}
    (root / "compare.json").write_text(json.dumps({"scenario": "shift",
                                                   "policies": policies}))
    return root


def test_the_run_report_is_self_contained(shift_out):
    html = render_dir(shift_out)
    assert html.startswith("<!DOCTYPE html>")
    assert "<script" not in html and "<link" not in html and "<img" not in html
    assert "url(" not in html and "@import" not in html
    # The only URL is the SVG namespace, which is a name, not something fetched.
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) == {"http://www.w3.org/2000/svg"}
    for plot in RUN_PLOTS:
        assert f'id="{plot}"' in html
    assert render_dir(shift_out) == html          # deterministic
    summary = json.loads((shift_out / "summary.json").read_text())
    assert f"<td>mean_locality</td><td>{summary['mean_locality']:.4g}</td>" in html
    # Each summary key with its unit and a one-line meaning.
    row = html.split("<td>gib_migrated</td>", 1)[1].split("</tr>", 1)[0]
    assert '<td class="unit">GiB</td>' in row and "memory actually moved" in row


def test_heatmaps_stay_readable_at_64_clients(tmp_path):
    """epyc: 64 VMs on 8 nodes.  One line per client would be a tangle; the report draws
    the spread and two client x time heatmaps, one row per client, in a few hundred
    rectangles (runs of one colour are merged)."""
    out = tmp_path / "epyc"
    simulate(scenarios.load("epyc"), duration=60.0, out=out, plots=True)
    html = render_dir(out)
    loc = html.split('id="locality"', 1)[1].split("</svg>", 1)[0]
    assert loc.count('class="series"') == 3            # mean, p5, least local
    for plot in ("heat-locality", "heat-home"):
        svg = html.split(f'id="{plot}"', 1)[1].split("</svg>", 1)[0]
        cells = svg.count('class="cell"')
        assert 64 <= cells <= 64 * 20, (plot, cells)
    assert len(html) < 2_000_000
    for png in ("locality.png", "load.png", "locality_heatmap.png", "home_heatmap.png"):
        assert (out / png).stat().st_size > 10_000, png


def test_the_compare_report_overlays_each_policy(compare_dir):
    html = render_dir(compare_dir)
    for plot in CMP_PLOTS:
        svg = html.split(f'id="{plot}"', 1)[1].split("</svg>", 1)[0]
        assert svg.count('class="series"') == 2
        assert 'data-series="esxi"' in svg and 'data-series="esxi-nomig"' in svg
    assert html.count('id="cmp-load-') == 2
    assert "<th>esxi</th><th>esxi-nomig</th>" in html


def test_compare_runs_are_found_in_every_layout(compare_dir, tmp_path):
    _, runs = rundata.compare_runs(compare_dir)
    assert runs == {"esxi": compare_dir / "esxi",
                    "esxi-nomig": compare_dir / "esxi-nomig" / "seed-1"}
    other = tmp_path / "cmp"
    shutil.copytree(compare_dir / "esxi", other / "runs" / "a")
    doc = {"scenario": "shift", "policies": {"esxi": {}, "static": {}}}
    (other / "compare.json").write_text(json.dumps(doc))
    _, runs = rundata.compare_runs(other)
    assert runs == {"esxi": other / "runs" / "a", "static": None}
    html = render_dir(other)
    assert "No time series found for: static" in html


def test_report_command_and_simulate_write_report_html(shift_out, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(shift_out, out)
    main(["report", str(out)])
    assert capsys.readouterr().out.strip() == str(out / REPORT)
    assert (out / REPORT).read_text() == render_dir(shift_out)
    sim = tmp_path / "sim"
    main(["simulate", "burst", "--duration", "20", "--out", str(sim), "-q"])
    assert (sim / REPORT).is_file() and (sim / "locality.png").is_file()
    nop = tmp_path / "noplots"
    main(["simulate", "burst", "--duration", "5", "--out", str(nop), "-q", "--no-plots"])
    assert not (nop / REPORT).exists()


@pytest.mark.parametrize(("setup", "message"), [
    ("missing", "DIR = '{p}': no such directory"),
    ("empty", "neither a run directory"),
    ("bad-csv", "timeseries.csv:2: time_s = 'soon': expected a float"),
    ("bad-json", "not valid JSON"),
])
def test_bad_directories_are_one_line_errors(shift_out, tmp_path, capsys, setup, message):
    p = tmp_path / "d"
    if setup != "missing":
        p.mkdir()
    if setup in ("bad-csv", "bad-json"):
        for f in ("summary.json", "timeseries.csv", "nodes.csv", "actions.csv"):
            shutil.copy(shift_out / f, p / f)
    if setup == "bad-csv":
        lines = (p / "timeseries.csv").read_text().splitlines()
        lines[1] = "soon" + lines[1][lines[1].index(","):]
        (p / "timeseries.csv").write_text("\n".join(lines) + "\n")
    if setup == "bad-json":
        (p / "summary.json").write_text("{")
    with pytest.raises(SystemExit) as e:
        main(["report", str(p)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.format(p=p) in err
    with pytest.raises(InputError):
        write_report(p)


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=5000))
def test_decimation_keeps_the_extremes(ys):
    y = np.array(ys)
    x = np.arange(len(y), dtype=float)
    dx, dy = decimate(x, y)
    assert len(dx) <= max(MAX_POINTS, len(y) if len(y) <= MAX_POINTS else 0)
    assert dy.min() == y.min() and dy.max() == y.max()
    assert np.all(np.diff(dx) > 0)


@given(st.floats(-1e6, 1e6), st.floats(1e-3, 1e6))
def test_ticks_cover_the_range(lo, span):
    ticks = nice_ticks(lo, lo + span)
    assert 2 <= len(ticks) <= 12
    assert all(lo - 1e-6 * span <= t <= lo + span * (1 + 1e-6) for t in ticks)


# --- in a real browser ------------------------------------------------------------------

PLOTS_JS = """
document.querySelectorAll('details').forEach(d => d.open = true);
JSON.stringify([...document.querySelectorAll('svg.plot')].map(svg => {
  const r = svg.getBoundingClientRect();
  const paths = [...svg.querySelectorAll('path.series')];
  const cells = [...svg.querySelectorAll('rect.cell')];     // a heatmap's
  return {id: svg.id, x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height,
          series: paths.length + cells.length,
          events: svg.querySelectorAll('line.event').length,
          drawn: paths.filter(p => p.getTotalLength() > 0 && p.getBBox().width > 0).length
                 + cells.filter(c => c.getBBox().width > 0 && c.getBBox().height > 0).length};
}))
"""


def _ink(png: bytes) -> int:
    """Pixels in the palette's colours (lines), not background, grid or text."""
    import matplotlib.image as mpimg
    img = (mpimg.imread(io.BytesIO(png), format="png")[..., :3] * 255).astype(int)
    hits = np.zeros(img.shape[:2], bool)
    for color in (*PALETTE, *LOCALITY_STEPS):
        rgb = np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)])
        if rgb.max() - rgb.min() < 40:
            continue          # a greyish colour would match the frame and the text too
        hits |= (np.abs(img - rgb) <= COLOR_TOLERANCE).all(axis=2)
    return int(hits.sum())


@pytest.fixture(scope="module")
def browser():
    exe = find_chromium()
    if exe is None:
        pytest.skip("chromium is not installed (Debian packages: chromium; or set "
                    "HOMENODE_CHROMIUM): the report was not rendered in a browser")
    b = Browser(exe)
    yield b
    b.close()


@pytest.mark.parametrize("kind", ["run", "compare"])
def test_chromium_draws_every_plot_without_the_network(browser, shift_out, compare_dir,
                                                       tmp_path, kind):
    src = shift_out if kind == "run" else compare_dir
    report = tmp_path / "report.html"
    report.write_text(render_dir(src))
    browser.open(report.as_uri())
    assert browser.requested_urls() == [report.as_uri()]     # nothing else was fetched
    rows = browser.evaluate("document.querySelectorAll('table.summary tr').length")
    assert rows > 10
    plots = json.loads(browser.evaluate(PLOTS_JS))
    ids = [p["id"] for p in plots]
    wanted = RUN_PLOTS if kind == "run" else (*CMP_PLOTS, "cmp-load-0", "cmp-load-1")
    assert set(wanted) <= set(ids)
    for p in plots:
        assert p["w"] > 300 and p["h"] > 150, p
        assert p["series"] > 0 and p["drawn"] == p["series"], p
        ink = _ink(browser.screenshot(p["x"], p["y"], p["w"], p["h"]))
        assert ink >= INK_MIN, (p["id"], ink)
        # shift's demand change at t = 60 s is marked on every time plot.
        assert p["events"] >= 1, p["id"]


def test_a_homenode_compare_run_gets_its_report(tmp_path):
    """`homenode compare` writes each policy's run (a run folder of its own, which
    `report` and `explain --from` read) and a report with the overlays, each policy's
    node load and its plots folded; `homenode report DIR` redraws the same page."""
    from homenode import compare
    from homenode.ops import explain

    sc = scenarios.load("burst")
    compare.run(sc, ["esxi", "static"], out=tmp_path, duration=20.0, jobs=1, plots=True)
    for p in ("esxi", "static"):
        assert rundata.is_run_dir(tmp_path / p) and (tmp_path / p / "report.html").exists()
    client = json.loads((tmp_path / "esxi" / "summary.json").read_text())
    assert client["policy"] == "esxi"
    assert explain.from_directory(tmp_path / "esxi", "web00")["client"] == "web00"
    html = (tmp_path / "report.html").read_text()
    assert "<th>esxi</th><th>static</th>" in html and "No time series" not in html
    for plot in ("cmp-locality", "cmp-throughput", "cmp-imbalance", "cmp-gib-migrated"):
        svg = html.split(f'id="{plot}"', 1)[1].split("</svg>", 1)[0]
        assert svg.count('class="series"') == 2, plot
    assert 'id="cmp-load-0"' in html and 'id="cmp-load-1"' in html
    assert html.count("<details><summary>All plots of") == 2
    assert "<td>series</td>" not in html
    assert render_dir(tmp_path) == html          # `homenode report DIR`: the same page
    # A second comparison into the folder replaces the first, runs included.
    compare.run(sc, ["esxi"], out=tmp_path, duration=10.0, jobs=1, plots=False)
    assert not (tmp_path / "static").exists() and not (tmp_path / "report.html").exists()
