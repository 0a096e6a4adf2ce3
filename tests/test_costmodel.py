"""The shared cost arithmetic (costmodel.py) and the cost-benefit rule built on it."""

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
