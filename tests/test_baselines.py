"""The peer baselines: static, numad, autonuma and the optimal MIP bound."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import snap, topo
from homenode.model import Decision, MigratePages, Pool, SetHome
from homenode.policy import autonuma as an
from homenode.policy import make_policy
from homenode.policy import numad as nd
from homenode.policy import optimal as opt
from homenode.policy.load import client_vectors, entitlements
from homenode.policy.placement import place_new
from homenode.settings import Settings
from homenode.sim import scenario as scenarios
from homenode.simulation import simulate
from homenode.units import GIB, MIB, PAGE_SIZE

GP = GIB // PAGE_SIZE      # pages per GiB


def homes(d) -> dict[str, tuple[int, int, str]]:
    return {a.client: (a.src, a.dst, str(a.reason)) for a in d.actions if isinstance(a, SetHome)}


def migrations(d) -> list[tuple[str, int, int, int]]:
    return [(a.client, a.src, a.dst, a.pages) for a in d.actions if isinstance(a, MigratePages)]


# --- static ------------------------------------------------------------------------------

def test_static_places_like_the_esxi_placer_and_never_moves_again():
    t = topo(2, 8.0)
    rows = [{"id": "a", "home": 0, "demand": 6.0, "pages": [GP, 0]},
            {"id": "b", "home": 0, "demand": 1.0, "pages": [GP, 0]},
            {"id": "new", "home": -1, "demand": 0.0, "vcpus": 2}]
    ref = snap(t, rows)
    cap, shares, res = client_vectors(ref)
    want = Decision()
    place_new(ref, Settings(), ref.home.copy(), entitlements(ref, cap, shares, res), cap, want)
    pol = make_policy("static")
    d = pol.decide(snap(t, rows))
    assert homes(d) == homes(want) == {"new": (-1, 1, "initial")}
    # Node 0 asked for twice its cores, half a client's memory remote: still nothing.
    s2 = snap(t, [{"id": "a", "home": 0, "demand": 8.0, "pages": [GP // 2, GP // 2]},
                  {"id": "b", "home": 0, "demand": 8.0, "pages": [GP, 0]}], time=500.0)
    assert pol.decide(s2).actions == []


# --- numad -------------------------------------------------------------------------------

def test_numad_magnitude_weights_needed_and_excess_resources():
    # node 0: mem (1000*10 + 2000*4) = 18000, cpu (200*6 + 200) = 1400 -> 25,200,000
    # node 1: mem (500*10) = 5000, cpu (100*6) = 600 -> 3,000,000
    m = nd.magnitude(1000, 200, np.array([3000.0, 500.0]), np.array([400.0, 100.0]))
    assert m.tolist() == [25_200_000, 3_000_000]


def test_numad_divides_by_distance_squared_and_picks_a_close_pair():
    # Two sockets of two nodes (10/12/21).  A request larger than one node needs two.
    # Node 0 alone is the best node, but its sibling node 1 is nearly full; nodes 2 and
    # 3 together beat it once each magnitude is divided by distance^2.
    dist = np.array([[10, 12, 21, 21], [12, 10, 21, 21], [21, 21, 10, 12],
                     [21, 21, 12, 10]], float)
    nodes = nd.Nodes(np.full(4, 800.0), np.array([800.0, 50.0, 700.0, 700.0]),
                     np.full(4, 10_000.0), np.array([9_000.0, 500.0, 8_000.0, 8_000.0]), dist)
    pick = nd.pick_nodes(nodes, 400.0, 12_000.0, False)
    assert sorted(pick.nodes) == [2, 3]
    one = nd.pick_nodes(nodes, 400.0, 5_000.0, False)
    assert one.nodes == [0]


def numad_host(rows, time=0.0):
    return snap(topo(2, 8.0), rows, time)


def busy_node0(time: float, extra: list[dict] | None = None):
    rows = [{"id": "a", "home": 0, "demand": 3.0, "vcpus": 4, "pages": [4 * GP, 0]},
            {"id": "b", "home": 0, "demand": 3.0, "vcpus": 4, "pages": [4 * GP, 0]}]
    return numad_host(rows + (extra or []), time)


def test_numad_cycle_intervals_and_one_move_per_cycle():
    pol = make_policy("numad")
    d = pol.decide(busy_node0(0.0))
    assert d.actions == [] and pol.next_cycle == nd.MIN_INTERVAL / 2
    # 2.5 s: first cycle sees the processes once -- no CPU rate yet, nothing moves.
    pol.decide(busy_node0(2.5))
    assert pol.next_cycle == 2.5 + nd.MAX_INTERVAL
    assert pol.decide(busy_node0(10.0)).actions == []             # between cycles
    # 17.5 s: both use 3 CPUs with 4 GiB; node 1 is idle.  Exactly one moves, with all
    # of its memory in one migrate_pages, and the next cycle comes after MIN_INTERVAL.
    d = pol.decide(busy_node0(17.5))
    moved = homes(d)
    assert len(moved) == 1
    (cid, (src, dst, why)), = moved.items()
    assert (src, dst, why) == (0, 1, "numad")
    assert migrations(d) == [(cid, 0, 1, 4 * GP)]
    assert pol.next_cycle == 17.5 + nd.MIN_INTERVAL


def test_numad_cool_down_keeps_a_just_bound_process_put():
    hog = {"id": "hog", "home": 0, "demand": 4.0, "vcpus": 4, "pages": [GP, 0],
           "cpu_affinity": frozenset({0})}
    a = {"id": "a", "home": 0, "demand": 3.0, "vcpus": 4, "pages": [4 * GP, 0]}
    pol = make_policy("numad")
    for t in (0.0, 2.5, 17.5):
        d = pol.decide(numad_host([hog, a], t))
    assert homes(d) == {"a": (0, 1, "numad")}
    # 5 s later a runs on node 1, its memory still on its way: bound 5 s ago, it is in
    # its 300 s cool-down and not on the busiest node, so numad does not look again.
    moved = {**a, "home": 1}
    d = pol.decide(numad_host([hog, moved], 22.5))
    assert d.actions == []
    verdicts = {c.client: c.verdict for c in d.considered}
    assert verdicts["a"].startswith("cool-down")


def test_numad_ignores_small_processes_and_leaves_local_ones_alone():
    rows = [{"id": "small", "home": 0, "demand": 6.0, "vcpus": 8, "pages": [GP // 8, 0]},
            {"id": "idle", "home": 0, "demand": 0.4, "vcpus": 8, "pages": [4 * GP, 0]}]
    pol = make_policy("numad")
    for t in (0.0, 2.5, 17.5, 32.5):
        d = pol.decide(numad_host(rows, t))
        assert d.actions == []
    # A process already on its best node with >= 90 % local memory: no bind, and its
    # bind time is refreshed (numad's "already localized").
    rows = [{"id": "c", "home": 1, "demand": 2.0, "vcpus": 4, "pages": [GP // 20, GP]},
            {"id": "busy", "home": 0, "demand": 7.0, "vcpus": 8, "pages": [4 * GP, 0]}]
    pol = make_policy("numad")
    for t in (0.0, 2.5, 17.5):
        d = pol.decide(numad_host(rows, t))
    assert "c" not in homes(d)
    assert pol.procs["c"].bind_time == 17.5


def test_numad_advice_races_for_simultaneous_starts():
    # numad -w answers from free resources *now*: two VMs asking in the same instant are
    # both sent to the emptiest node (the race the reference documents).
    t = topo(2, 8.0)
    s = snap(t, [{"id": "old", "home": 0, "demand": 4.0, "vcpus": 4, "pages": [GP, 0]},
                 {"id": "x", "home": -1, "demand": 0.0, "vcpus": 4, "mem_bytes": GIB},
                 {"id": "y", "home": -1, "demand": 0.0, "vcpus": 4, "mem_bytes": GIB}])
    d = make_policy("numad").decide(s)
    assert homes(d) == {"x": (-1, 1, "initial"), "y": (-1, 1, "initial")}


def test_numad_migrates_every_remote_node_at_once():
    t = topo(3, 8.0)
    rows = [{"id": "v", "home": 0, "demand": 3.0, "vcpus": 4, "pages": [GP, GP, 2 * GP]},
            {"id": "hog", "home": 0, "demand": 5.0, "vcpus": 8, "pages": [GP, 0, 0]},
            {"id": "hog2", "home": 1, "demand": 7.0, "vcpus": 8, "pages": [0, GP, 0]}]
    pol = make_policy("numad")
    for tm in (0.0, 2.5, 17.5):
        d = pol.decide(snap(t, rows, tm))
    assert homes(d) == {"v": (0, 2, "numad")}
    assert sorted(migrations(d)) == [("v", 0, 2, GP), ("v", 1, 2, GP)]


# --- autonuma ------------------------------------------------------------------------------

@pytest.mark.parametrize("local, remote, private, shared, expect", [
    (10, 0, 10, 0, 1.3),    # private (ps 10 >= 7): slower by 3 slots of 0.1 s
    (8, 2, 2, 8, 1.1),      # mostly shared, lr 8 >= 7: slower by 1 slot
    (0, 10, 2, 8, 0.5),     # remote and shared, lr 0 ps 2: faster by 5 slots
    (3, 7, 3, 7, 0.6),      # lr 3 ps 3: faster by 4 slots
    (0, 10, 10, 0, 2.0),    # local + shared == 0: the kernel doubles the period
])
def test_autonuma_scan_period_adapts_like_update_task_scan_period(local, remote, private,
                                                                  shared, expect):
    assert an.adapt_period(1.0, local, remote, private, shared, 0.1, 60.0) == \
        pytest.approx(expect)


def test_autonuma_scan_bounds_follow_task_size():
    # 4 GiB = 16 windows of 256 MB: min max(0.1, 1/16) s, max 60/16 s per window.
    assert an.scan_bounds(4 * GP) == pytest.approx((0.1, 3.75))
    # 100 MB fits one window: a pass between 1 s and 60 s.
    assert an.scan_bounds(100 * MIB // PAGE_SIZE) == pytest.approx((1.0, 60.0))


@pytest.mark.parametrize("since, width, expect", [(0.0, 0.1, 0.0), (0.95, 0.1, 0.5),
                                                   (1.0, 0.1, 1.0), (3.0, 0.25, 1.0)])
def test_two_stage_filter_passes_pages_restamped_from_the_new_node(since, width, expect):
    assert an.two_stage_pass(since, width) == pytest.approx(expect)


def _passes_until_memory_follows(pol, t, row, clock):
    """Move ``row``'s task to node 1 while node 0 fills up with pinned work, so it cannot
    go back to its memory: the memory has to follow it.  Returns how far (in passes)
    the task had scanned since the move when its first pages were migrated."""
    moved = {**row, "home": 1}
    hog = {"id": "hog", "home": 0, "demand": 8.0, "vcpus": 8, "pages": [GP, 0],
           "cpu_affinity": frozenset({0})}
    while clock < 600:
        d = pol.decide(snap(t, [moved, hog], clock))
        assert homes(d) == {}
        if migrations(d):
            return pol.tasks["v"].since_move
        clock += 1.0
    return None


def test_autonuma_memory_follows_a_moved_task_only_after_a_full_pass():
    t = topo(2, 8.0)
    pol = make_policy("autonuma")
    # a VM: several threads share the memory, so its local pages are scanned and stamped
    row = {"id": "v", "home": 0, "demand": 2.0, "vcpus": 2, "pages": [GP, 0]}
    clock = 0.0
    while pol.tasks.get("v") is None or pol.tasks["v"].seq <= an.EARLY_SEQ:
        pol.decide(snap(t, [row], clock))
        clock += 1.0
    first = _passes_until_memory_follows(pol, t, row, clock)
    assert first is not None and first >= 1.0 - 1e-9


def test_autonuma_single_threaded_task_faults_only_on_remote_pages_and_they_follow_at_once():
    t = topo(2, 8.0)
    pol = make_policy("autonuma")
    row = {"id": "v", "home": 0, "demand": 1.0, "vcpus": 1, "pages": [GP, 0]}
    clock, faults = 0.0, 0.0
    while clock < 30:
        d = pol.decide(snap(t, [row], clock))
        faults += sum(w.count for w in d.work if w.kind == "hint_fault")
        clock += 1.0
    assert faults == 0 and pol.tasks["v"].seq > an.EARLY_SEQ    # local: never marked
    # its pages were never faulted while local (no stamp): the first window passes
    first = _passes_until_memory_follows(pol, t, row, clock)
    assert first is not None and first < 1.0


def test_autonuma_load_balancer_sheds_from_an_overloaded_node():
    t = topo(2, 8.0)
    rows = [{"id": f"c{i}", "home": 0, "demand": 3.0, "vcpus": 4, "pages": [GP, 0]}
            for i in range(3)]
    d = make_policy("autonuma").decide(snap(t, rows))
    assert [(s, dd, why) for s, dd, why in homes(d).values()] == [(0, 1, "balance")]
    # 6 of 8 cores: not overloaded, nothing moves.
    d = make_policy("autonuma").decide(snap(t, rows[:2]))
    assert homes(d) == {}


def _rotations(pol, t, rows, clock):
    """One tick of autonuma on ``rows``; the CFS rotations it made, applied to rows."""
    d = pol.decide(snap(t, rows, clock))
    got = {c: (s, dd) for c, (s, dd, why) in homes(d).items() if why == "balance"}
    for r in rows:
        if r["id"] in got:
            r["home"] = got[r["id"]][1]
    return got


def test_autonuma_cfs_rotates_tasks_between_an_overloaded_and_a_fully_busy_node():
    t = topo(2, 1.0)
    # three always-running one-vCPU tasks on two one-CPU nodes: 2 against 1
    rows = [{"id": f"w{i}", "home": h, "demand": 1.0, "vcpus": 1, "pages": [0, 0]}
            for i, h in enumerate([0, 0, 1])]
    pol = make_policy("autonuma")
    assert _rotations(pol, t, rows, 0.0) == {}              # no time for a balance yet
    # imbalance min(2 - 1.5, 1.5 - 1) = 0.5 < a task's load 1: it moves after one failed
    # balance (shr_bound(1, 1) = 0.5), well within a 0.5 s tick of 32 ms intervals
    assert _rotations(pol, t, rows, 0.5) == {"w0": (0, 1)}   # the oldest arrival first
    # node 1 is now the overloaded one, and its oldest task goes back the other way
    assert _rotations(pol, t, rows, 1.0) == {"w2": (1, 0)}
    assert _rotations(pol, t, rows, 1.5) == {"w1": (0, 1)}
    # a tick too short for the failed balance it needs (2 x 32 ms): no move
    assert _rotations(pol, t, rows, 1.5 + 0.05) == {}


def test_autonuma_cfs_rotation_spares_balanced_nodes_and_multi_vcpu_clients():
    t = topo(2, 1.0)
    # two against two: both overloaded, equal load per CPU -- balanced
    rows = [{"id": f"w{i}", "home": i % 2, "demand": 1.0, "vcpus": 1, "pages": [0, 0]}
            for i in range(4)]
    pol = make_policy("autonuma")
    for clock in (0.0, 0.5, 1.0):
        assert _rotations(pol, t, rows, clock) == {}
    # a VM's vCPU threads move one at a time in the kernel: the model does not rotate it
    rows = [{"id": f"v{i}", "home": h, "demand": 1.0, "vcpus": 2, "pages": [0, 0]}
            for i, h in enumerate([0, 0, 1])]
    pol = make_policy("autonuma")
    for clock in (0.0, 0.5, 1.0):
        assert _rotations(pol, t, rows, clock) == {}
    # a task whose move takes it off its preferred node, while another task there does
    # not prefer it, waits cache_nice_tries + 1 failed balances (migrate_degrades_locality):
    # 4 x 32 ms, more than a 0.1 s tick holds; without a preference, 2 x 32 ms
    rows = [{"id": "w0", "home": 0, "demand": 1.0, "vcpus": 1, "pages": [0, 0]},
            {"id": "v1", "home": 0, "demand": 1.0, "vcpus": 2, "pages": [0, 0]},
            {"id": "w2", "home": 1, "demand": 1.0, "vcpus": 1, "pages": [0, 0]}]
    pol = make_policy("autonuma")
    _rotations(pol, t, rows, 0.0)
    pol.tasks["w0"].preferred = 0
    assert _rotations(pol, t, rows, 0.1) == {}
    assert _rotations(pol, t, rows, 0.3) == {"w0": (0, 1)}
    rows[0]["home"] = 0
    pol = make_policy("autonuma")
    _rotations(pol, t, rows, 0.0)
    assert _rotations(pol, t, rows, 0.1) == {"w0": (0, 1)}


def test_autonuma_single_threaded_pages_once_faulted_wait_for_the_two_stage_filter():
    t = topo(2, 8.0)
    row = {"id": "v", "home": 0, "demand": 1.0, "vcpus": 1, "pages": [GP // 4, 0]}
    first_window = {}
    for stamped in (False, True):
        pol = make_policy("autonuma")
        clock = 0.0
        while pol.tasks.get("v") is None or pol.tasks["v"].seq <= an.EARLY_SEQ:
            pol.decide(snap(t, [row], clock))
            clock += 1.0
        v = pol.tasks["v"]
        assert not v.stamps.any()               # local all along: never faulted
        if stamped:                             # as if it had faulted from another node
            v.stamps[:] = row["pages"]
        while True:
            d = pol.decide(snap(t, [{**row, "home": 1}], clock))
            clock += 1.0
            if any(w.kind == "hint_fault" for w in d.work):
                first_window[stamped] = migrations(d)
                break
    # unstamped pages pass at once; stamped ones wait for a second fault from node 1
    assert first_window == {False: [("v", 0, 1, GP // 4)], True: []}


def test_autonuma_scans_at_most_one_window_per_period_of_wall_time():
    t = topo(2, 8.0)
    pol = make_policy("autonuma")
    # a 256 MiB VM is one window a pass, period >= 1 s; owed 5 s of run time (as after a
    # move resets its period with node_stamp kept), it still scans once per period of
    # wall time: mm->numa_next_scan
    row = {"id": "v", "home": 0, "demand": 1.0, "vcpus": 2, "pages": [GP // 4, 0]}
    pol.decide(snap(t, [row], 0.0))
    v = pol.tasks["v"]
    v.runtime, v.next_scan = 10.0, 5.0
    scans = []
    for k in range(1, 9):
        d = pol.decide(snap(t, [row], 0.5 * k))
        scans.append(sum(w.count for w in d.work if w.kind == "scan_page") / (GP // 4))
    # one window a tick at most, and no more in the 4 s than 4 s / 1 s (+ the first)
    assert max(scans) == 1 and sum(scans) <= 5


def test_autonuma_moves_to_the_preferred_node_or_swaps_when_it_is_full():
    t = topo(2, 8.0)
    pol = make_policy("autonuma")
    rows = [{"id": "a", "home": 0, "demand": 2.0, "vcpus": 2, "pages": [0, GP]},
            {"id": "b", "home": 1, "demand": 2.0, "vcpus": 2, "pages": [0, GP]}]
    pol.decide(snap(t, rows, 0.0))
    pol.tasks["a"].preferred, pol.tasks["a"].faults[:] = 1, [0, 100]
    d = pol.decide(snap(t, rows, 1.0))
    assert homes(d)["a"] == (0, 1, "autonuma")
    # Both nodes full: a on 0 prefers 1, b on 1 prefers 0 -> they swap.
    rows = [{"id": "a", "home": 0, "demand": 8.0, "vcpus": 8, "pages": [0, GP]},
            {"id": "b", "home": 1, "demand": 8.0, "vcpus": 8, "pages": [GP, 0]}]
    pol = make_policy("autonuma")
    pol.decide(snap(t, rows, 0.0))
    pol.tasks["a"].preferred, pol.tasks["a"].faults[:] = 1, [0, 100]
    pol.tasks["b"].preferred, pol.tasks["b"].faults[:] = 0, [100, 0]
    d = pol.decide(snap(t, rows, 1.0))
    assert homes(d) == {"a": (0, 1, "swap"), "b": (1, 0, "swap")}


# --- optimal -------------------------------------------------------------------------------

def problem(want, cores, mem=None, memory=None, loss=0.2, allowed=None):
    want = np.asarray(want, float)
    c, n = want.size, len(cores)
    return opt.Problem(want, np.asarray(mem if mem is not None else np.ones(c), float),
                       np.full(c, loss), np.zeros((c, n)),
                       np.ones((c, n), bool) if allowed is None else np.asarray(allowed),
                       np.asarray(cores, float),
                       np.asarray(memory if memory is not None else np.full(n, 1e6), float))


def test_optimal_packs_to_use_every_core():
    # 2 nodes x 4 cores, clients want 3, 3, 2, 2: {3,2} + {3,2} uses all 8 cores;
    # {3,3} would leave 2 cores of demand unserved.
    h, s = opt.solve(problem([3, 3, 2, 2], [4, 4]))
    assert s.status == "optimal" and s.progress == pytest.approx(8.0, abs=1e-6)
    assert sorted(np.bincount(h, [3, 3, 2, 2], 2).tolist()) == [5.0, 5.0]
    assert s.bound >= s.progress - 1e-9


def brute_force(want, cores):
    best = 0.0
    for assign in itertools.product(range(len(cores)), repeat=len(want)):
        load = np.bincount(assign, want, len(cores))
        best = max(best, float(np.minimum(load, cores).sum()))
    return best


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.1, 4.0), min_size=1, max_size=5),
       st.lists(st.sampled_from([2.0, 3.0, 4.0, 6.0]), min_size=1, max_size=3))
def test_optimal_matches_brute_force_when_memory_fits(want, cores):
    _, s = opt.solve(problem(want, cores))
    assert s.progress == pytest.approx(brute_force(want, cores), abs=1e-3)
    assert s.progress <= min(sum(want), sum(cores)) + 1e-6


def test_optimal_bounds_progress_when_memory_must_spill():
    # One client of 1.5 GiB, nodes of 1 GiB: at most 2/3 local.  All-remote loss with
    # m = 1 at distance 21 (latency 1.6): c = 1 - 1/1.6 = 0.375; with 1/3 remote the
    # bound is 1 - 0.375/3 = 0.875 >= the simulator's 1/(2/3 + 1/3 * 1.6) = 0.833.
    _, s = opt.solve(problem([1.0], [4, 4], mem=[1.5], memory=[1.0, 1.0], loss=0.375))
    assert s.progress == pytest.approx(0.875, abs=1e-6)
    assert s.progress >= 1 / (2 / 3 + 1 / 3 * 1.6)


def test_optimal_keeps_partners_together_when_it_pays():
    # Two partners (one affinity group) on 2 nodes x 4 cores; all-remote communication
    # costs c' = 0.1 of progress.  Wanting 2 + 2 they share a node: 4 cores, no loss.
    # Wanting 3 + 3 they cannot: apart they give 6 x 0.9 = 5.4 > 4 together.
    def pair(w):
        p = problem([w, w], [4, 4])
        p.group, p.comm_loss = np.array([0, 0]), np.array([0.1, 0.1])
        return opt.solve(p)

    h, s = pair(2.0)
    assert h[0] == h[1] and s.progress == pytest.approx(4.0, abs=1e-6)
    h, s = pair(3.0)
    assert h[0] != h[1] and s.progress == pytest.approx(5.4, abs=1e-6)


def test_optimal_counts_pool_limits_like_the_simulator():
    t = topo(2, 8.0)
    s = snap(t, [{"id": "a", "home": 0, "demand": 4.0, "pool": "p", "pages": [GP, 0]},
                 {"id": "b", "home": 1, "demand": 4.0, "pool": "p", "pages": [0, GP]}])
    s.pools = (Pool("p", limit=3.0),)
    assert opt.OptimalPolicy().problem(s).want.sum() == pytest.approx(3.0)


def test_optimal_respects_allowed_nodes_and_reports_time_limits():
    h, s = opt.solve(problem([3, 3], [4, 4], allowed=[[True, False], [True, False]]))
    assert h.tolist() == [0, 0] and s.progress == pytest.approx(4.0, abs=1e-6)
    rng = np.random.default_rng(1)
    big = problem(rng.uniform(0.2, 3, 40), [8.0] * 4, mem=rng.uniform(1, 8, 40),
                  memory=[64.0] * 4)
    h, s = opt.solve(big, time_limit=1e-9)
    assert s.status == "time limit" and s.timed_out


def test_optimal_policy_places_moves_and_migrates_everything_remote():
    t = topo(2, 4.0)
    pol = opt.OptimalPolicy()
    rows = [{"id": "a", "home": 0, "demand": 3.0, "vcpus": 4, "pages": [GP, 0]},
            {"id": "b", "home": 0, "demand": 3.0, "vcpus": 4, "pages": [GP, 0]},
            {"id": "n", "home": -1, "demand": 0.0, "vcpus": 1, "mem_bytes": GIB}]
    d = pol.decide(snap(t, rows))
    moved = homes(d)
    assert sum(1 for v in moved.values() if v[2] == "optimal") == 1
    assert moved["n"][2] == "initial"
    mover = next(k for k, v in moved.items() if v[2] == "optimal")
    assert migrations(d) == [(mover, 0, 1, GP)]
    mip = [c for c in d.considered if c.client == "(mip)"]
    assert len(mip) == 1 and "optimal" in mip[0].verdict and "gap" in mip[0].verdict
    assert pol.stats[-1].moves == 1 and pol.required_pages() == GP


def test_optimal_required_copying_counts_memory_that_first_landed_elsewhere():
    # Both clients' memory was allocated on node 0, but two 3-core clients cannot share
    # a 4-core node: whichever runs on node 1 has to have its 1 GiB copied -- whether or
    # not optimal changed its home to get there.
    t = topo(2, 4.0)
    rows = [{"id": "a", "home": 0, "demand": 3.0, "vcpus": 4, "pages": [GP, 0]},
            {"id": "b", "home": 1, "demand": 3.0, "vcpus": 4, "pages": [GP, 0]}]
    pol = opt.OptimalPolicy()
    d = pol.decide(snap(t, rows))
    final = {"a": 0, "b": 1, **{k: v[1] for k, v in homes(d).items()}}
    assert sorted(final.values()) == [0, 1]
    away = next(k for k, v in final.items() if v == 1)
    assert migrations(d) == [(away, 0, 1, GP)]
    assert pol.required_pages() == GP


def test_optimal_never_moves_unmanaged_clients():
    t = topo(2, 4.0)
    rows = [{"id": "pinned", "home": 0, "demand": 4.0, "vcpus": 4, "pages": [GP, 0],
             "cpu_affinity": frozenset({0})},
            {"id": "x", "home": 0, "demand": 3.0, "vcpus": 4, "pages": [GP, 0]}]
    d = opt.OptimalPolicy().decide(snap(t, rows))
    assert homes(d) == {"x": (0, 1, "optimal")}


def test_optimal_gets_the_scenarios_hints_through_a_factory():
    sc = scenarios.load("burst")
    made: list[opt.OptimalPolicy] = []

    def factory(cfg):
        made.append(opt.OptimalPolicy(cfg, opt.hints_for(sc)))
        return made[-1]

    simulate(sc, "optimal", duration=4, factory=factory)
    assert len(made) == 1 and made[0].hints.mem_intensity["db00"] == 0.8
    assert opt.hints_for(scenarios.load("pingpong")).comm_intensity["q1"] == 0.3
    assert make_policy("optimal").hints == opt.Hints()


# --- every baseline on a real scenario ----------------------------------------------------

@pytest.mark.parametrize("policy", ["static", "numad", "autonuma", "optimal"])
def test_each_baseline_runs_the_shift_scenario(policy):
    r = simulate(scenarios.load("shift"), policy, duration=120).summary
    assert r["policy"] == policy and 0 < r["throughput_vs_ideal"] <= 1
    if policy == "static":
        assert r["home_changes"] == 0 and r["pages_migrated"] == 0
    else:
        assert r["throughput_vs_ideal"] > 0.9     # static, which never moves, gets ~0.85
        assert r["home_changes_by_reason"]


def test_optimal_solves_an_epyc_sized_problem_and_reports_its_gap():
    sc = scenarios.load("epyc")
    rng = np.random.default_rng(3)
    c, n = len(sc.clients), sc.host.topology.n
    p = problem(rng.uniform(0.1, 2.0, c), sc.host.topology.cores,
                mem=[s.client.mem_bytes / GIB for s in sc.clients],
                memory=sc.host.topology.mem_pages * PAGE_SIZE / GIB)
    h, s = opt.solve(p)
    assert (h >= 0).all() and s.status in ("optimal", "time limit")
    assert np.isfinite(s.gap) and s.bound >= s.progress - 1e-6
    assert n == 8 and c == 64
