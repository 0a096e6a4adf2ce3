"""page_mig_at_move: pages granted in the decision that sets a client's new home."""

from __future__ import annotations

import numpy as np

from helpers import snap, topo
from homenode.model import Decision, MigratePages
from homenode.policy.esxi import EsxiPolicy
from homenode.policy.pacing import pace
from homenode.settings import Settings


def _decide(s: Settings, since: float, home: int = 1, calls=(99.0, 100.0)):
    pol = EsxiPolicy(s)
    t = topo(2, mem_gib=64)
    rows = [dict(id="m", home=home, demand=1.0, since=since, pages=[400_000, 0]),
            dict(id="n", home=0, demand=1.0, pages=[1000, 0])]
    out = [pol.decide(snap(t, rows, c)) for c in calls]
    return [[a for a in d.actions if isinstance(a, MigratePages) and a.client == "m"]
            for d in out]


def test_default_waits_page_mig_delay():
    assert Settings().page_mig_at_move is False
    first, second = _decide(Settings(), since=98.5)
    assert first == [] and second == []


def test_at_move_grants_without_the_delay():
    s = Settings(page_mig_at_move=True)
    first, second = _decide(s, since=98.5)
    # the first call paces one rebalance_period ahead; the next the time since the first
    assert [(a.src, a.dst, a.pages) for a in first] == \
        [(0, 1, int(s.page_mig_rate_max * s.rebalance_period))]
    assert [(a.src, a.dst, a.pages) for a in second] == [(0, 1, int(s.page_mig_rate_max))]


def test_a_home_set_in_this_decision_is_granted_only_with_at_move():
    t = topo(2, mem_gib=64)
    sn = snap(t, [dict(id="m", home=0, demand=1.0, since=0.0, pages=[400_000, 0])], 100.0)
    new_home = np.array([1])
    for at_move, want in ((False, []), (True, [(0, 1, 32768)])):
        d = Decision()
        pace(sn, Settings(page_mig_at_move=at_move, page_mig_rate_max=65536), new_home,
             0.5, d)
        assert [(a.src, a.dst, a.pages) for a in d.actions] == want
