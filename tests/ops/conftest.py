"""Shared runs for the ops tests: one short simulation, fed to every recorder at once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from homenode import loop
from homenode.metrics import RunRecorder
from homenode.ops.status import StatusRecorder, TimedHost
from homenode.policy import make_policy
from homenode.settings import Settings
from homenode.sim import scenario as scenarios
from homenode.sim.host import SimClock, SimHost
from homenode.simulation import simulate

# `shift`: 16 VMs on 2 nodes, half of them busy from t = 60 s, so by 90 s the policy has
# moved clients, refused moves and migrated memory -- everything the views show.
SCENARIO = "shift"
DURATION = 90.0


@dataclass
class LiveState:
    status: StatusRecorder
    run: RunRecorder
    host: SimHost


@pytest.fixture(scope="session")
def shift_state() -> LiveState:
    sc = scenarios.load(SCENARIO)
    host = SimHost(sc, sc.seed)
    cfg = Settings.from_mapping(sc.settings, where=sc.source)
    status = StatusRecorder(sc.host.topology, source="simulation", policy="esxi",
                            scenario=sc.name, settings=cfg)
    run = RunRecorder()
    loop.run(TimedHost(host, status), make_policy("esxi", cfg), SimClock(host),
             duration=DURATION, interval=1.0, recorder=loop.Tee(run, status))
    return LiveState(status, run, host)


@pytest.fixture(scope="session")
def shift_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `simulate` output directory (no PNGs: the HTML report does not need them)."""
    out = tmp_path_factory.mktemp("shift-out")
    simulate(scenarios.load(SCENARIO), "esxi", duration=DURATION, out=out, plots=False)
    return out
