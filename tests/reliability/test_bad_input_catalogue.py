"""docs/bad-input.md, row by row: the exact message, one line, non-zero exit, no
traceback (bad_input_support.py runs each area's recipe)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bad_input_support import rows, run_row

from homenode import loop
from homenode.ops.api import serve_status
from homenode.ops.status import StatusRecorder, TimedHost
from homenode.policy import make_policy
from homenode.settings import Settings
from homenode.sim import scenario as scenarios
from homenode.sim.host import SimClock, SimHost

DOC = Path(__file__).resolve().parents[2] / "docs" / "bad-input.md"
ROWS = rows(DOC)
MIN_ROWS = 40          # issue 7: at least 40 bad inputs
AREAS = {"config", "scenario", "bitbrains", "planetlab", "cli", "api", "api-cli"}


@pytest.fixture(scope="module")
def api_base(tmp_path_factory):
    """A live status API (a few simulated seconds of the burst scenario behind it) at
    BASE/s.sock; each row runs in its own BASE/rN."""
    base = tmp_path_factory.mktemp("bad")
    sc = scenarios.load("burst")
    host = SimHost(sc, sc.seed)
    cfg = Settings.from_mapping(sc.settings, where=sc.source)
    rec = StatusRecorder(sc.host.topology, source="simulation", policy="esxi",
                         scenario=sc.name, settings=cfg)
    loop.run(TimedHost(host, rec), make_policy("esxi", cfg), SimClock(host), duration=5,
             interval=1.0, recorder=rec)
    server = serve_status(rec, base / "s.sock")
    yield base
    server.close()


def test_the_catalogue_is_big_enough_and_numbered():
    assert len(ROWS) >= MIN_ROWS
    assert [r.number for r in ROWS] == list(range(1, len(ROWS) + 1))
    assert {r.area for r in ROWS} == AREAS


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.number}-{r.area}")
def test_row(api_base, row):
    d = api_base / f"r{row.number}"
    d.mkdir()
    o = run_row(row, d, api_base / "s.sock")
    assert not o.traceback, o.out
    assert "\n" not in o.out
    assert o.out == row.message, f"\n doc: {row.message}\n got: {o.out}"
    if o.code is not None:                # the command-line areas
        assert o.code != 0
        assert not (d / "out").exists()   # nothing half-written
