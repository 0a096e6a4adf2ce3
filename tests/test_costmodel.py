"""The shared cost arithmetic (costmodel.py) and the cost-benefit rule built on it."""

import re

import numpy as np
import pytest

from helpers import snap, topo
from homenode.costmodel import (
    expected_delivered,
    latency_ratio,
    memory_efficiency,
    parse_slit_latency,
    remote_seconds,
)
from homenode.errors import InputError
from homenode.model import SetHome
from homenode.policy.esxi import EsxiPolicy
from homenode.settings import Settings
from homenode.sim import scenario as scenarios
from homenode.units import GIB, PAGE_SIZE


def test_default_table_is_the_simulators_latency():
    host = scenarios.load("epyc").host            # SLIT 10 / 12 / 32
    assert np.allclose(latency_ratio(host.topology.distance), host.latency_ratio())


def test_slit_table_parses_and_refuses_nonsense():
    assert parse_slit_latency("10:1, 21:1.8") == ((10.0, 1.0), (21.0, 1.8))
    for bad in ("10", "x:1", "5:1", "10:0.5", "10:1,10:2", ""):
        with pytest.raises(ValueError):
            parse_slit_latency(bad)
    with pytest.raises(InputError, match=r"settings\.slit_latency"):
        Settings.from_mapping({"slit_latency": "10:1,21"})


def test_remote_memory_costs_work_and_copying_takes_paced_time():
    assert memory_efficiency(0.5, 1.0) == 1.0
    assert memory_efficiency(0.5, 1.6) == pytest.approx(1 / 1.3)
    pages = np.array([30 * GIB / PAGE_SIZE])
    area, secs = remote_seconds(np.array([1.0]), pages, 131072.0, 0.1, 0.1, 2.0)
    # 30 GiB at 512 MiB/s is 60 s at full rate; the knee slows the last tenth
    assert 60 < secs[0] < 90 and 30 < area[0] < 40
    half, _ = remote_seconds(np.array([0.5]), pages, 131072.0, 0.1, 0.1, 2.0)
    assert half[0] < area[0] / 3


def test_a_node_busy_only_at_its_peaks_still_loses_cpu_there():
    calm = expected_delivered(np.array([10.0]), np.array([0.0]), np.array([12.0]))
    wild = expected_delivered(np.array([10.0]), np.array([3.0]), np.array([12.0]))
    assert calm[0] == pytest.approx(10.0) and wild[0] < 9.9


P = 1000


def decide(rows, settings=None, periods=30):
    pol = EsxiPolicy(settings or Settings(balance_persistence=1))
    d = None
    for k in range(periods):      # a steady history, so the forecast trusts it
        d = pol.decide(snap(topo(2), rows, 100.0 + 2.0 * k))
        if any(isinstance(a, SetHome) for a in d.actions):
            break
    return d


def test_a_move_between_uncontended_nodes_gains_nothing_and_is_not_made():
    d = decide([dict(id="a", home=0, demand=4.0, pages=[P, 0]),
                dict(id="b", home=0, demand=4.0, pages=[P, 0]),
                dict(id="c", home=1, demand=0.5, pages=[0, P])],
               Settings(balance_min_load=0.0, balance_persistence=1))
    assert not [a for a in d.actions if isinstance(a, SetHome)]
    assert {c.verdict for c in d.considered if c.reason.value == "balance"} <= {
        "does_not_pay", "would_thrash", "gain_below_mig_threshold"}
    assert any(c.verdict == "does_not_pay" and "core-s" in c.detail for c in d.considered)


def test_a_move_off_an_overcommitted_node_pays_unless_its_memory_is_too_big():
    small = 1 * GIB // PAGE_SIZE
    rows = [dict(id="a", home=0, demand=6.0, vcpus=6, pages=[small, 0]),
            dict(id="b", home=0, demand=6.0, vcpus=6, pages=[small, 0]),
            dict(id="c", home=1, demand=1.0, pages=[0, small])]
    d = decide(rows)
    moved = [a for a in d.actions if isinstance(a, SetHome)]
    assert moved and "gain" in moved[0].detail
    # the same with memory the paced copy needs hours for: it can never repay
    huge = 30 * GIB // PAGE_SIZE
    rows[0]["pages"] = rows[1]["pages"] = [huge, 0]
    slow = Settings(balance_persistence=1, page_mig_rate_max=100.0)
    d = decide(rows, slow)
    assert not [a for a in d.actions if isinstance(a, SetHome)]
    assert any(c.verdict == "does_not_pay" for c in d.considered)
    off = Settings(balance_persistence=1, page_mig_rate_max=100.0, cost_benefit_enable=False)
    assert [a for a in decide(rows, off).actions if isinstance(a, SetHome)]


def test_a_move_copies_and_gains_only_what_its_destination_has_room_for():
    gib = GIB // PAGE_SIZE
    rows = [dict(id="a", home=0, demand=6.0, vcpus=6, pages=[gib, 0]),
            dict(id="b", home=0, demand=6.0, vcpus=6, pages=[gib, 0]),
            dict(id="c", home=1, demand=1.0, pages=[0, gib])]
    roomy = [a for a in decide(rows).actions if isinstance(a, SetHome)]
    assert roomy and "1.0 GiB copied" in roomy[0].detail
    # node 1 filled to 0.5 GiB above page_mig_free_reserve (2 % of 64 GiB): half of the
    # mover's pages stay remote for good, and the gain is the smaller for it
    filler = 64 * gib - int(0.02 * 64 * gib) - gib - gib // 2
    full = [a for a in decide([*rows, dict(id="f", home=1, demand=0.1,
                                            pages=[0, filler])]).actions
            if isinstance(a, SetHome)]
    assert full and "0.5 GiB copied" in full[0].detail
    rate = [float(re.search(r"\(([0-9.]+) cores x", a.detail).group(1))
            for a in (roomy[0], full[0])]
    assert rate[1] < rate[0]


def _placed(d):
    return [(a.client, a.dst) for a in d.actions if isinstance(a, SetHome)]


def test_a_found_process_leaves_its_memory_only_when_that_pays():
    # node 0 is full; the found client's memory is all there
    small, huge = 1 * GIB // PAGE_SIZE, 30 * GIB // PAGE_SIZE
    rows = [dict(id="busy", home=0, demand=10.0, vcpus=10, pages=[small, 0]),
            dict(id="found", demand=2.0, vcpus=2, pages=[2 * small, 0])]
    d = EsxiPolicy().decide(snap(topo(2), rows, 0.0))
    assert _placed(d) == [("found", 1)]
    assert "leaves its memory on node 0: gain" in d.actions[0].detail
    # with its 30 GiB copied at a crawl the same move never repays: it stays
    rows[1]["pages"] = [huge, 0]
    slow = Settings(page_mig_rate_max=100.0)
    d = EsxiPolicy(slow).decide(snap(topo(2), rows, 0.0))
    assert _placed(d) == [("found", 0)]
    assert "stays by its memory on node 0; best other, node 1" in d.actions[0].detail
    # without the rule, the headroom terms alone send it away
    off = Settings(page_mig_rate_max=100.0, cost_benefit_enable=False)
    assert _placed(EsxiPolicy(off).decide(snap(topo(2), rows, 0.0))) == [("found", 1)]


def test_on_a_saturated_host_clients_with_a_few_pages_spread_by_headroom():
    # every core is wanted wherever they go, so no node gains work: pages that follow
    # within one rebalance period must not pile the arrivals onto their node
    rows = [dict(id="a", home=0, demand=10.0, vcpus=10, pages=[P, 0]),
            dict(id="b", home=1, demand=10.0, vcpus=10, pages=[0, P]),
            dict(id="x", demand=1.0, vcpus=1, pages=[8, 0]),
            dict(id="y", demand=1.0, vcpus=1, pages=[8, 0])]
    d = EsxiPolicy().decide(snap(topo(2), rows, 0.0))
    assert sorted(n for _, n in _placed(d)) == [0, 1]
    assert any("follow within one rebalance period" in a.detail for a in d.actions)
    # memory the pacing needs longer for is weighed, and the tie stays by it
    big = 2 * GIB // PAGE_SIZE
    rows[2]["pages"] = rows[3]["pages"] = [big, 0]
    assert _placed(EsxiPolicy().decide(snap(topo(2), rows, 0.0))) == [("x", 0), ("y", 0)]


def _changes_of_x(settings):
    """x (3 cores) on 2 x 10 cores beside a pinned load that moves between the nodes
    every 60 s for 600 s: each time moving x pays (its node is overcommitted)."""
    pol = EsxiPolicy(settings)
    home, since, changes = 0, 0.0, []
    small = 16 << 20 >> 12

    def pg(n):
        return [small if n == 0 else 0, small if n == 1 else 0]

    for k in range(300):
        t = 100.0 + 2.0 * k
        busy0 = (k // 30) % 2 == 0
        rows = [dict(id="p0", home=0, vcpus=10, demand=9.5 if busy0 else 0.5,
                     allowed_nodes=frozenset({0}), pages=pg(0)),
                dict(id="p1", home=1, vcpus=10, demand=0.5 if busy0 else 9.5,
                     allowed_nodes=frozenset({1}), pages=pg(1)),
                dict(id="x", home=home, vcpus=4, demand=3.0, pages=pg(home), since=since)]
        for a in pol.decide(snap(topo(2), rows, t)).actions:
            if isinstance(a, SetHome) and a.client == "x":
                home, since = a.dst, t
                changes.append(t)
    return changes


def test_no_client_changes_home_more_than_the_limit_in_the_window():
    assert len(_changes_of_x(Settings(home_change_limit=0))) == 10     # no limit
    capped = _changes_of_x(Settings(home_change_limit=3, home_change_window=600.0))
    assert capped == [100.0, 160.0, 220.0]


def _first_move(settings, periods=60):
    """(time of the first home change, its detail) for a node overcommitted for good
    whose move the forecast never credits with more than ``cost_horizon`` of stay."""
    rows = [dict(id="a", home=0, demand=6.0, vcpus=6, pages=[8 * GIB // PAGE_SIZE, 0]),
            dict(id="b", home=0, demand=6.0, vcpus=6, pages=[8 * GIB // PAGE_SIZE, 0]),
            dict(id="c", home=1, demand=1.0, pages=[0, GIB // PAGE_SIZE])]
    pol = EsxiPolicy(settings)
    refused = 0
    for k in range(periods):
        t = 100.0 + 2.0 * k
        d = pol.decide(snap(topo(2), rows, t))
        moved = [a for a in d.actions if isinstance(a, SetHome)]
        if moved:
            return t, refused, moved[0].detail
        refused += any(c.verdict == "does_not_pay" for c in d.considered)
    return None, refused, ""


def test_a_refused_move_is_made_once_waiting_has_cost_what_it_costs():
    short = dict(balance_persistence=1, cost_horizon=4.0)
    t, refused, detail = _first_move(Settings(**short))
    # refused while the work lost waiting was below the move's price, then made
    assert t is not None and refused >= 3
    lost, price = (float(x) for x in re.search(
        r"lost ([\d.]+) core-s waiting, of ([\d.]+) that moving costs", detail).groups())
    assert lost >= price > 0
    # without the rule the forecast alone decides: never
    t_off, refused_off, _ = _first_move(Settings(**short, cost_regret=False))
    assert t_off is None and refused_off == 60
