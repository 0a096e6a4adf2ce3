"""One test per rule of the ESXi-style policy, on hand-made snapshots.

Hosts are 2 nodes x 10 cores unless said otherwise, so a client's load share is
demand / 10: a 3-core client is 0.3 of a node.  The ESXi rules are tested with
``balance_min_load = 0`` (balance whatever the load, as ESXi does); homenode's own gate
has a test of its own.
"""

import numpy as np
import pytest

from helpers import snap, topo
from homenode.model import MigratePages, Reason, SetHome
from homenode.policy.esxi import EsxiPolicy
from homenode.policy.pacing import rate
from homenode.settings import Settings

P = 1000  # pages


ESXI_RULES = Settings(balance_min_load=0.0, balance_persistence=1, affinity_peak_window=0.0,
                      cost_benefit_enable=False)


def decide(rows, time=100.0, settings=None, nodes=2):
    pol = EsxiPolicy(settings or ESXI_RULES)
    return pol.decide(snap(topo(nodes), rows, time))


def moves(d):
    return [a for a in d.actions if isinstance(a, SetHome)]


def verdicts(d):
    return {(c.client, c.dst): c.verdict for c in d.considered}


def test_imbalance_below_threshold_is_left_alone():
    # loads 0.60 vs 0.55: imbalance 0.05 < mig_imbalance_threshold 0.10
    d = decide([dict(id="a", home=0, demand=6.0, pages=[P, 0]),
                dict(id="b", home=1, demand=5.5, pages=[0, P])])
    assert moves(d) == []


def test_gain_below_mig_threshold_is_not_taken():
    # 0.705 vs 0.55 (imbalance 0.155).  Moving "tiny" (0.005) gains 0.01 < 0.02;
    # moving "big" (0.7) flips the pair to 0.005 vs 1.255: thrash.
    d = decide([dict(id="big", home=0, demand=7.0, pages=[P, 0]),
                dict(id="tiny", home=0, demand=0.05, pages=[P, 0]),
                dict(id="other", home=1, demand=5.5, pages=[0, P])])
    assert moves(d) == []
    v = verdicts(d)
    assert v[("tiny", 1)] == "gain_below_mig_threshold"
    assert v[("big", 1)] == "would_thrash"


def test_move_that_would_thrash_is_not_taken_but_a_halving_one_is():
    # 0.6 vs 0.1: moving "a" gives 0.0 vs 0.7 (flipped, 0.7 > 50 % of 0.5) -> thrash.
    d = decide([dict(id="a", home=0, demand=6.0, pages=[P, 0]),
                dict(id="b", home=1, demand=1.0, pages=[0, P])])
    assert moves(d) == []
    assert verdicts(d)[("a", 1)] == "would_thrash"
    # add "c" (0.2) on node 0: 0.8 vs 0.1; moving c gives 0.6 vs 0.3 (no flip) -> taken
    d = decide([dict(id="a", home=0, demand=6.0, pages=[P, 0]),
                dict(id="c", home=0, demand=2.0, pages=[P, 0]),
                dict(id="b", home=1, demand=1.0, pages=[0, P])])
    assert [(m.client, m.src, m.dst, m.reason) for m in moves(d)] == [("c", 0, 1,
                                                                       Reason.BALANCE)]


def test_client_with_memory_on_destination_is_preferred():
    # x and y gain the same balance; y already has 80 % of its memory on node 1
    d = decide([dict(id="x", home=0, demand=3.0, pages=[P, 0]),
                dict(id="y", home=0, demand=3.0, pages=[P // 5, 4 * P // 5]),
                dict(id="z", home=1, demand=1.0, pages=[0, P])])
    assert [m.client for m in moves(d)] == ["y"]


def test_no_move_leaves_a_client_below_its_reservation():
    # node 1 already has 9 of its 10 cores reserved; "r" reserves 2 -> it may not go there,
    # although it is the best balance move; "s" (no reservation) goes instead.
    d = decide([dict(id="r", home=0, demand=3.0, reservation=2.0, pages=[0, 4 * P]),
                dict(id="s", home=0, demand=3.0, pages=[P, 0]),
                dict(id="q", home=0, demand=1.0, pages=[P, 0]),
                dict(id="held", home=1, demand=1.0, reservation=9.0, vcpus=10,
                     pages=[0, P])])
    assert [m.client for m in moves(d)] == ["s"]
    assert verdicts(d)[("r", 1)] == "breaks_reservation"


def test_no_load_move_while_no_node_is_busy():
    # 0.70 vs 0.10: imbalanced, but node 0 is below balance_min_load (0.80), so every
    # client already gets all the CPU it wants and a move would only strand memory
    rows = [dict(id="a", home=0, demand=4.0, pages=[P, 0]),
            dict(id="c", home=0, demand=3.0, pages=[P, 0]),
            dict(id="b", home=1, demand=1.0, pages=[0, P])]
    gate = Settings(balance_persistence=1, cost_benefit_enable=False)
    assert moves(decide(rows, settings=gate)) == []
    # at 0.95 the same shape is rebalanced
    rows[0]["demand"] = 6.5
    assert [m.client for m in moves(decide(rows, settings=gate))] == ["c"]


def test_imbalance_must_persist_unless_a_node_is_overcommitted():
    # 0.95 vs 0.10: busy but not overcommitted -> wait balance_persistence periods
    rows = [dict(id="a", home=0, demand=6.5, pages=[P, 0]),
            dict(id="c", home=0, demand=3.0, pages=[P, 0]),
            dict(id="b", home=1, demand=1.0, pages=[0, P])]
    s = Settings(balance_persistence=3, cost_benefit_enable=False)
    pol = EsxiPolicy(s)
    first = [k for k in range(5) if moves(pol.decide(snap(topo(), rows, 100.0 + 2 * k)))]
    assert first[0] == 2
    # 1.15 vs 0.10: overcommitted -> at once
    rows[0].update(demand=8.5, vcpus=10)
    assert moves(EsxiPolicy(s).decide(snap(topo(), rows, 100.0)))


def test_recently_moved_client_stays_put():
    d = decide([dict(id="a", home=0, demand=3.0, since=95.0, pages=[P, 0]),
                dict(id="b", home=0, demand=3.0, since=95.0, pages=[P, 0]),
                dict(id="c", home=1, demand=0.5, pages=[0, P])])
    assert moves(d) == []
    assert verdicts(d)[("a", 1)] == "too_soon"


def test_locality_move_back_to_memory_when_balanced():
    # balanced (0.3 vs 0.3), but "m" has 90 % of its memory on node 1 and is tiny
    d = decide([dict(id="m", home=0, demand=0.2, pages=[P // 10, 9 * P // 10]),
                dict(id="a", home=0, demand=2.9, pages=[P, 0]),
                dict(id="b", home=1, demand=3.0, pages=[0, P])])
    assert [(x.client, x.dst, x.reason) for x in moves(d)] == [("m", 1, Reason.LOCALITY)]


def test_locality_move_waits_until_peaks_are_known():
    rows = [dict(id="m", home=0, demand=0.2, pages=[P // 10, 9 * P // 10]),
            dict(id="a", home=0, demand=2.9, pages=[P, 0]),
            dict(id="b", home=1, demand=3.0, pages=[0, P])]
    pol = EsxiPolicy(Settings(affinity_peak_window=6.0))   # 3 periods of 2 s
    for k in range(5):
        d = pol.decide(snap(topo(), rows, 100.0 + 2 * k))
        if moves(d):
            break
        assert verdicts(d)[("m", 1)] == "peaks_unknown"
    assert (k, [m.client for m in moves(d)]) == (2, ["m"])


def test_locality_move_refused_above_core_cap():
    # node 1 would reach 0.95 > core_cap_ratio 0.90
    d = decide([dict(id="m", home=0, demand=0.6, pages=[0, P]),
                dict(id="a", home=0, demand=8.5, vcpus=10, pages=[P, 0]),
                dict(id="b", home=1, demand=8.9, vcpus=10, pages=[0, P])])
    assert moves(d) == []
    assert verdicts(d)[("m", 1)] == "over_core_cap"


def test_burst_of_new_clients_spreads_over_nodes():
    rows = [dict(id=f"vm{i}", demand=0.0, vcpus=2, mem_bytes=1 << 30) for i in range(20)]
    d = decide(rows, time=0.0)
    homes = [m.dst for m in moves(d)]
    assert all(m.reason is Reason.INITIAL for m in moves(d))
    assert homes.count(0) == homes.count(1) == 10


def test_new_client_avoids_the_node_short_of_memory():
    # equal CPU; node 0 has 60 of 64 GiB used -> the 8 GiB client goes to node 1
    used = 60 * (1 << 30) // 4096
    d = decide([dict(id="hog", home=0, demand=1.0, pages=[used, 0]),
                dict(id="cpu1", home=1, demand=1.0, pages=[0, 10]),
                dict(id="new", demand=1.0, vcpus=2, mem_bytes=8 << 30)], time=0.0)
    assert [(m.client, m.dst) for m in moves(d)] == [("new", 1)]


# --- memory migration pacing --------------------------------------------------------

@pytest.mark.parametrize("remote_frac,free_frac,expected_ratio", [
    (0.50, 0.50, 1.00),   # plenty remote, plenty free: full rate
    (0.05, 0.50, 0.50),   # 5 % remote, knee 10 %: half rate
    (0.001, 0.50, 0.10),  # almost done: floor of 10 %
    (0.50, 0.06, 0.50),   # free 6 %: (6 - 2) / (10 - 2) = half
    (0.50, 0.02, 0.00),   # at the reserve: nothing
])
def test_pacing_rate(remote_frac, free_frac, expected_ratio):
    s = Settings()
    assert rate(s, remote_frac, free_frac) == pytest.approx(expected_ratio * s.page_mig_rate_max)


def test_pacing_slows_monotonically_as_remote_memory_runs_out():
    s = Settings()
    rates = [rate(s, f, 0.5) for f in (0.5, 0.2, 0.1, 0.05, 0.02, 0.01)]
    assert rates == sorted(rates, reverse=True) and rates[0] > rates[-1]


def _two_calls(since: float, free_gib: int = 64):
    """A client that moved to node 1 at ``since`` with all its memory still on node 0."""
    pol = EsxiPolicy()
    t = topo(2, mem_gib=free_gib)
    rows = [dict(id="m", home=1, demand=1.0, since=since, pages=[400_000, 0]),
            dict(id="n", home=0, demand=1.0, pages=[1000, 0])]
    pol.decide(snap(t, rows, 99.0))
    return pol.decide(snap(t, rows, 100.0))


def test_brief_move_migrates_nothing():
    d = _two_calls(since=98.5)   # on its new home for 1.5 s < page_mig_delay 2 s
    assert [a for a in d.actions if isinstance(a, MigratePages)] == []


def test_settled_move_migrates_at_the_paced_rate():
    d = _two_calls(since=90.0)
    migs = [a for a in d.actions if isinstance(a, MigratePages)]
    assert [(a.client, a.src, a.dst) for a in migs] == [("m", 0, 1)]
    assert migs[0].pages == int(Settings().page_mig_rate_max * 1.0)


def test_migration_never_fills_the_destination_past_its_reserve():
    s = Settings()
    pol = EsxiPolicy(s)
    t = topo(2, mem_gib=1)                    # 262144 pages per node
    full = int(t.mem_pages[1] * 0.97)         # node 1 is 97 % full
    rows = [dict(id="m", home=1, demand=1.0, since=0.0, pages=[100_000, 0]),
            dict(id="hog", home=1, demand=0.0, pages=[0, full])]
    pol.decide(snap(t, rows, 99.0))
    d = pol.decide(snap(t, rows, 100.0))
    migs = [a.pages for a in d.actions if isinstance(a, MigratePages)]
    room = t.mem_pages[1] - full - s.page_mig_free_reserve * t.mem_pages[1]
    assert sum(migs) <= max(room, 0)


def test_page_migration_can_be_disabled():
    s = Settings(page_mig_enable=False)
    pol = EsxiPolicy(s)
    rows = [dict(id="m", home=1, demand=1.0, since=0.0, pages=[100_000, 0])]
    pol.decide(snap(topo(), rows, 99.0))
    d = pol.decide(snap(topo(), rows, 100.0))
    assert not any(isinstance(a, MigratePages) for a in d.actions)


def test_unmanaged_client_is_counted_but_never_moved():
    # "pinned" has manual affinity: it loads node 0 but only "free" may move
    d = decide([dict(id="pinned", home=0, demand=6.0, cpu_affinity=frozenset({0}),
                     pages=[P, 0]),
                dict(id="free", home=0, demand=2.0, pages=[P, 0]),
                dict(id="b", home=1, demand=1.0, pages=[0, P])])
    assert [m.client for m in moves(d)] == ["free"]
    assert np.isfinite(moves(d)[0].score)


def test_a_found_process_is_placed_by_its_memory_within_the_socket():
    # Regression (QEMU scenario e): 4 nodes as 2 sockets (10/12/32), all of the new
    # client's memory on node 0, node 0 busy -> node 1 (same socket), not node 2 or 3.
    from homenode.model import Topology
    dist = np.array([[10, 12, 32, 32], [12, 10, 32, 32], [32, 32, 10, 12], [32, 32, 12, 10]])
    t = Topology.uniform(4, 2.0, 8 << 30, distance=dist)
    rows = [dict(id="busy", home=0, demand=2.0, vcpus=2, pages=[10, 0, 0, 0]),
            dict(id="new", demand=1.0, vcpus=1, pages=[50_000, 0, 0, 0])]
    d = EsxiPolicy().decide(snap(t, rows, 0.0))
    assert [(m.client, m.dst) for m in moves(d)] == [("new", 1)]
    # with room on node 0 it stays with its memory
    rows[0]["demand"] = 0.5
    d = EsxiPolicy().decide(snap(t, rows, 0.0))
    assert [(m.client, m.dst) for m in moves(d)] == [("new", 0)]


def test_a_found_client_with_few_pages_and_no_room_goes_to_the_nearest_free_node():
    # Regression (QEMU scenario e): node 0, holding its pages, is full; nodes 1-3 have
    # the same free CPU, and node 1 (same socket) a little less free memory than 2-3
    # (as real nodes differ): that little must not send it across the sockets.
    from homenode.model import Topology
    dist = np.array([[10, 12, 32, 32], [12, 10, 32, 32], [32, 32, 10, 12], [32, 32, 12, 10]])
    t = Topology.uniform(4, 1.0, 8 << 30, distance=dist)
    rows = [dict(id="busy", home=0, demand=1.0, vcpus=1, pages=[10, 0, 0, 0]),
            dict(id="idle", home=1, demand=0.0, vcpus=1, pages=[0, 5000, 0, 0]),
            dict(id="new", demand=1.0, vcpus=1, pages=[100, 0, 0, 0])]
    d = EsxiPolicy().decide(snap(t, rows, 0.0))
    assert [(m.client, m.dst) for m in moves(d)] == [("new", 1)]
    assert "no room on node 0" in d.actions[0].detail


def test_a_swap_that_fairness_would_undo_is_not_made():
    from homenode.policy.load import client_vectors, entitlements
    from homenode.policy.moves import make_moves
    from homenode.policy.payoff import fairness_would_undo

    s = Settings(balance_min_load=0.0, balance_persistence=1)
    sn = snap(topo(2), [dict(id="a", home=0, demand=7.0, pages=[P, 0]),
                        dict(id="b", home=0, demand=2.0, pages=[P, 0]),
                        dict(id="c", home=1, demand=3.0, pages=[0, P])])
    cap, shares, res = client_vectors(sn)
    ent = entitlements(sn, cap, shares, res)
    v = EsxiPolicy(s)._view(sn, sn.home.copy(), ent, ent, cap, res)
    # loads 0.9 / 0.3; swapping a (0 -> 1) with c (1 -> 0) leaves 0.5 / 0.7: c goes
    # to a busier node than the one it leaves
    swap = make_moves(v, Reason.SWAP, np.array([0]), 0, 1, np.array([2]))
    floor = s.fairness_slack * s.cost_horizon * 3.0     # c's rotation back needs this
    v.deficit[:] = [0.0, 0.0, floor - 1.0]
    assert not fairness_would_undo(v, swap)[0]
    v.deficit[:] = [0.0, 0.0, floor + 1.0]
    assert fairness_would_undo(v, swap)[0]
    v.deficit[:] = [floor, 0.0, 2 * floor - 1.0]          # behind a by less than the floor
    assert not fairness_would_undo(v, swap)[0]
    # moving b alone leaves b on a node less busy than the one it leaves
    v.deficit[:] = [0.0, 10 * floor, 0.0]
    assert not fairness_would_undo(v, make_moves(v, Reason.BALANCE, np.array([1]), 0, 1))[0]



def _split_pair(x: float, y: float) -> list[dict]:
    """A communicating pair split over two nodes of 10 cores, each beside another client."""
    g = 1000
    return [dict(id="p1", home=0, demand=3.0, pages=[g, 0], affinity_group="chatty"),
            dict(id="x", home=0, demand=x, pages=[g, 0]),
            dict(id="p2", home=1, demand=3.0, pages=[0, g], affinity_group="chatty"),
            dict(id="y", home=1, demand=y, pages=[0, g])]


# balanced at an imbalance below 0.5, so that the pair's moves are weighed, not balance
PAIR_RULES = Settings(balance_min_load=0.0, balance_persistence=1, affinity_peak_window=0.0,
                      cost_benefit_enable=False, mig_imbalance_threshold=0.5)


def test_either_half_of_a_split_pair_may_go_to_the_other():
    # p2 does not fit beside p1 and x (3 + 4.5 + 3 > 0.9 x 10 cores); p1 fits beside p2
    # and y.  Counting the client itself, both halves were drawn to node 0 alone.
    d = decide(_split_pair(4.5, 1.0), settings=PAIR_RULES)
    assert [(a.client, a.dst, a.reason) for a in moves(d)] == [("p1", 1, Reason.AFFINITY)]
    assert verdicts(d)[("p2", 0)] == "over_core_cap"


def test_two_pairs_that_fit_nowhere_alone_are_joined_by_a_swap():
    # two split pairs beside x and y: no half fits beside its partner (each move would
    # load its destination past 0.9 x 10 cores), but exchanging a chatty half for a
    # quiet one brings both pairs together
    g = 1000
    rows = [*_split_pair(3.0, 3.0),
            dict(id="q1", home=0, demand=2.0, pages=[g, 0], affinity_group="quiet"),
            dict(id="q2", home=1, demand=2.0, pages=[0, g], affinity_group="quiet")]
    d = decide(rows, settings=PAIR_RULES)
    got = {(a.client, a.dst, a.reason) for a in moves(d)}
    assert got in ({("p2", 0, Reason.SWAP), ("q1", 1, Reason.SWAP)},
                   {("p1", 1, Reason.SWAP), ("q2", 0, Reason.SWAP)})
    alone = {c.verdict for c in d.considered if c.reason is Reason.AFFINITY}
    assert alone == {"over_core_cap"}
