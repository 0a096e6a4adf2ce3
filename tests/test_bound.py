"""The true upper bound (sim/bound.py): the max flow and the whole-home bound are right,
and no policy beats them."""

import itertools

import highspy
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import traces_missing
from homenode import loop
from homenode.highs import SOLVER_THREADS
from homenode.policy import make_policy
from homenode.policy.optimal import OptimalPolicy, hints_for
from homenode.settings import Settings
from homenode.sim import scenario as scenarios
from homenode.sim.bound import WholeHomeBound, cut_masks, tick_bound
from homenode.sim.host import SimClock, SimHost
from homenode.sim.scenario import parse
from homenode.simulation import simulate

POLICIES = ("esxi", "static", "numad", "autonuma", "oracle")


def lp_max_flow(want: np.ndarray, cores: np.ndarray, allowed: np.ndarray) -> float:
    """The same relaxation solved as a linear program (HiGHS), x[i,n] >= 0."""
    c, n = allowed.shape
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    # HiGHS's thread pool is process-wide: start it as the oracle does, or its solves fail
    h.setOptionValue("threads", SOLVER_THREADS)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = c * n, c + n
    lp.col_cost_ = np.full(c * n, -1.0)
    lp.col_lower_ = np.zeros(c * n)
    lp.col_upper_ = np.where(allowed.ravel(), np.inf, 0.0)
    lp.row_lower_ = np.full(c + n, -np.inf)
    lp.row_upper_ = np.concatenate([want, cores])
    rows = [[] for _ in range(c + n)]
    for i in range(c):
        for k in range(n):
            rows[i].append(i * n + k)
            rows[c + k].append(i * n + k)
    m = lp.a_matrix_
    m.format_ = highspy.MatrixFormat.kRowwise
    m.start_ = np.cumsum([0] + [len(r) for r in rows])
    m.index_ = np.concatenate(rows)
    m.value_ = np.ones(len(m.index_))
    h.passModel(lp)
    h.run()
    return -h.getInfo().objective_function_value


def draw_instance(clients: int, nodes: int, data) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wants, cores and allowed nodes of one random tick."""
    want = np.array(data.draw(st.lists(st.floats(0, 8), min_size=clients, max_size=clients)))
    cores = np.array(data.draw(st.lists(st.floats(0, 6), min_size=nodes, max_size=nodes)))
    rows = data.draw(st.lists(st.lists(st.booleans(), min_size=nodes, max_size=nodes),
                              min_size=clients, max_size=clients))
    allowed = np.array(rows, bool)
    allowed[~allowed.any(axis=1), 0] = True        # every client may run somewhere
    return want, cores, allowed


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 5), st.integers(1, 4), st.data())
def test_cut_formula_is_the_max_flow(clients, nodes, data):
    want, cores, allowed = draw_instance(clients, nodes, data)
    got = tick_bound(want, cores, cut_masks(allowed))
    assert got == pytest.approx(lp_max_flow(want, cores, allowed), rel=1e-7, abs=1e-7)


def test_without_constraints_it_is_demand_or_capacity():
    assert cut_masks(np.ones((3, 2), bool)) is None
    assert tick_bound(np.array([3.0, 4.0]), np.array([4.0, 4.0])) == 7.0
    assert tick_bound(np.array([6.0, 4.0]), np.array([4.0, 4.0])) == 8.0
    # one client pinned to node 0 cannot use node 1's idle cores
    cuts = cut_masks(np.array([[True, False], [True, True]]))
    assert tick_bound(np.array([6.0, 1.0]), np.array([4.0, 4.0]), cuts) == 5.0


def best_whole_homes(want: np.ndarray, cores: np.ndarray, allowed: np.ndarray) -> float:
    """Every placement tried: the most CPU whole homes can give."""
    best = 0.0
    for homes in itertools.product(*(np.flatnonzero(a) for a in allowed)):
        load = np.bincount(np.array(homes, int), want, cores.size)
        best = max(best, float(np.minimum(load, cores).sum()))
    return best


@settings(max_examples=120, deadline=None)
@given(st.integers(1, 6), st.integers(1, 4), st.data())
def test_the_whole_home_bound_is_the_best_placement(clients, nodes, data):
    want, cores, allowed = draw_instance(clients, nodes, data)
    got = WholeHomeBound(cores, allowed)(want)
    best = best_whole_homes(want, cores, allowed)
    # never below what a placement reaches; above it only by the rounding of the wants
    # and the margin kept above the solver's tolerance
    assert best - 1e-9 <= got <= best * (1 + 1e-6) + 1e-4
    assert got <= tick_bound(want, cores, cut_masks(allowed)) + 1e-9


def test_whole_homes_cannot_split_a_client_over_two_nodes():
    bound = WholeHomeBound(np.array([12.0, 12.0]), np.ones((3, 2), bool))
    # three busy 8-core clients: one node holds one of them, the other node 12 of 16
    assert tick_bound(np.full(3, 8.0), np.array([12.0, 12.0])) == 24.0
    assert bound(np.full(3, 8.0)) == pytest.approx(20.0, abs=1e-4)
    assert bound(np.full(3, 8.0)) == pytest.approx(20.0, abs=1e-4)
    assert bound.solves == 1                       # the same wants are solved once
    # where they fit, or fill both nodes, the flow is the bound and no MIP runs
    assert bound(np.array([8.0, 4.0, 4.0])) == 16.0
    assert bound(np.array([12.0, 12.0, 3.0])) == 24.0
    assert bound.solves == 1


def scenario_text(clients: list[dict], nodes: int, mem_gib: int) -> str:
    out = [f"""
duration = 40
seed = 3
[host]
nodes = {nodes}
cores_per_node = 4
memory_per_node = "{mem_gib}GiB"
migration_bandwidth = "256MiB"
"""]
    for i, c in enumerate(clients):
        allowed = f"allowed_nodes = [{c['node'] % nodes}]\n" if c["pinned"] else ""
        out.append(f"""
[[clients]]
name = "c{i}"
vcpus = {c['vcpus']}
memory = "{min(c['mem_mib'], nodes * mem_gib * 1024)}MiB"
start = {c['start']}
stop = {c['start'] + c['life']}
{allowed}demand = {{ kind = "random_walk", cpu = {c['cpu']}, sigma = 0.5, max = 8 }}
""")
    return "".join(out)


client_st = st.fixed_dictionaries({
    "vcpus": st.integers(1, 6), "mem_mib": st.integers(1, 6000), "start": st.integers(0, 20),
    "life": st.integers(5, 60), "cpu": st.floats(0, 6), "pinned": st.booleans(),
    "node": st.integers(0, 3)})


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(client_st, min_size=1, max_size=7), st.integers(2, 4), st.integers(1, 6),
       st.sampled_from(POLICIES))
def test_no_policy_exceeds_the_bound_on_random_scenarios(clients, nodes, mem_gib, policy):
    sc = parse(scenario_text(clients, nodes, mem_gib), "bound.toml")
    host = run_policy(sc, policy, sc.duration)
    assert host.progress.sum() <= host.bound * (1 + 1e-9) + 1e-9


def run_policy(sc, policy: str, duration: float) -> SimHost:
    host = SimHost(sc)
    pol = OptimalPolicy(Settings(), hints_for(sc)) if policy == "oracle" else \
        make_policy(policy)
    loop.run(host, pol, SimClock(host), duration=duration, interval=1.0)
    return host


@pytest.mark.slow
@pytest.mark.parametrize("name", scenarios.builtin_names())
def test_the_bound_holds_on_every_builtin_scenario(name):
    if traces_missing(name):
        pytest.skip(traces_missing(name))
    sc = scenarios.load(name)
    for policy in POLICIES:
        # 120 s of each: the bound holds tick by tick, a longer run adds little
        host = run_policy(sc, policy, min(sc.duration, 120.0))
        assert 0 < host.progress.sum() <= host.bound * (1 + 1e-9), policy
        assert host.bound <= host.ideal.sum() * (1 + 1e-9)


def test_the_bound_is_below_ideal_when_the_host_is_overcommitted():
    s = simulate(scenarios.load("fairness"), "static", duration=60, plots=False).summary
    assert s["throughput_vs_ideal"] < 0.8 < s["throughput_vs_bound"]
