"""The sweep report in a real headless Chromium: self-contained, every plot drawn."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sweep_support import write_spec

from homenode.sweep import cases, driver, executors
from homenode.sweep import spec as specs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ops"))
from ops_chromium import Browser, find_chromium

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium")


def test_the_report_renders_offline_with_every_plot_and_the_heatmap(tmp_path, traces):
    p = write_spec(tmp_path / "s.toml", traces, shapes='["small", "wide"]',
                   policies='["esxi", "static", "numad"]')
    plan = cases.expand(specs.load(str(p)))
    out = tmp_path / "out"
    driver.run(plan, out, executors.Serial(plan.root))
    b = Browser(CHROMIUM, width=1000, height=900)
    try:
        b.open((out / "report.html").resolve().as_uri())
        assert [u for u in b.requested_urls() if not u.startswith("file:")] == []
        sizes = b.evaluate("[...document.querySelectorAll('svg.plot')].map(s => "
                           "{const r = s.getBoundingClientRect(); return [r.width, r.height]})")
        assert len(sizes) == 3 and all(w > 500 and h > 150 for w, h in sizes), sizes
        paths = b.evaluate("document.querySelectorAll('svg.plot path.series').length")
        assert paths >= 9          # three policies in each of the three distributions
        heat = b.evaluate("[...document.querySelectorAll('td.heat')].filter(td => "
                          "td.style.background).length")
        assert heat == 6           # 3 days x 2 shapes
        assert b.evaluate("document.documentElement.scrollWidth") <= 1000
        png = b.screenshot(0, 0, 1000, 900)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    finally:
        b.close()
