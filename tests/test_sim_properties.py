"""Invariants of the simulated host under arbitrary workloads and arbitrary actions."""

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from homenode.model import MigratePages, Reason, SetHome
from homenode.sim.host import SimHost
from homenode.sim.scenario import parse

N_NODES = 3


def scenario_text(clients: list[dict], mem_gib: int) -> str:
    out = [f"""
duration = 60
seed = 5
[host]
nodes = {N_NODES}
cores_per_node = 4
memory_per_node = "{mem_gib}GiB"
migration_bandwidth = "256MiB"
"""]
    for i, c in enumerate(clients):
        out.append(f"""
[[clients]]
name = "c{i}"
vcpus = {c['vcpus']}
memory = "{c['mem_mib']}MiB"
limit = {c['limit']}
reservation = {min(c['res'], c['vcpus'])}
start = {c['start']}
touch_rate = "512MiB"
demand = {{ kind = "random_walk", cpu = {c['cpu']}, sigma = 0.5, max = 8 }}
""")
    return "".join(out)


client_st = st.fixed_dictionaries({
    "vcpus": st.integers(1, 6), "mem_mib": st.integers(1, 3000),
    "limit": st.floats(0.5, 8), "res": st.floats(0, 2), "start": st.floats(0, 5),
    "cpu": st.floats(0, 6)})

action_st = st.tuples(st.integers(0, 7), st.sampled_from(["home", "pages"]),
                      st.integers(0, N_NODES - 1), st.integers(0, N_NODES - 1),
                      st.integers(0, 400_000))


_ONE_MIB = {"vcpus": 1, "mem_mib": 1, "limit": 1.0, "res": 0.0, "start": 0.0, "cpu": 0.0}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(client_st, min_size=1, max_size=8), st.integers(1, 4),
       st.lists(st.lists(action_st, max_size=4), min_size=1, max_size=12))
# found by hypothesis: all 256 pages of a client on node 0 to node 1 and one more to node 2
# in the same tick took its pages on node 0 to -1
@example([_ONE_MIB] * 5, 1, [[], [(0, "home", 0, 0, 0), (0, "pages", 0, 1, 256),
                                  (0, "pages", 0, 2, 1)]])
def test_host_invariants(clients, mem_gib, rounds):
    sc = parse(scenario_text(clients, mem_gib), "prop.toml")
    host = SimHost(sc)
    cap = host.topo.mem_pages
    t = 0.0
    for actions in rounds:
        snap = host.snapshot()
        ids = [c.id for c in snap.clients]
        todo = []
        for k, kind, a, b, n in actions:
            if not ids:
                break
            cid = ids[k % len(ids)]
            if kind == "home":
                todo.append(SetHome(cid, -1, a, Reason.BALANCE))
            else:
                todo.append(MigratePages(cid, a, b, n))
        # give unplaced clients a home so they run
        for i, c in enumerate(snap.clients):
            if snap.home[i] < 0:
                todo.append(SetHome(c.id, -1, i % N_NODES, Reason.INITIAL))
        before = host.pages.sum(axis=1).copy()
        host.apply(todo)
        t += 0.7
        host.advance_to(t)
        pages = host.pages
        # pages are never negative and no node holds more than its memory
        assert (pages >= 0).all()
        assert (pages.sum(axis=0) <= cap).all()
        # a client never holds more than its footprint; migration neither creates nor
        # destroys pages (only first touch adds, only a stop removes)
        assert (pages.sum(axis=1) <= host.target).all()
        alive = host.active
        assert (pages.sum(axis=1)[alive] >= before[alive]).all()
        # CPU received never exceeds demand, vCPUs/limit, or node capacity
        assert (host.received <= host.demand + 1e-9).all()
        assert (host.received <= host.cap + 1e-9).all()
        placed = alive & (host.home >= 0)
        per_node = np.bincount(host.home[placed], host.received[placed], N_NODES)
        assert (per_node <= host.topo.cores + 1e-9).all()
        # whatever the actions, progress stays under the true upper bound (sim/bound.py)
        assert host.progress.sum() <= host.bound * (1 + 1e-9) + 1e-9


def test_migration_moves_pages_without_creating_any():
    sc = parse(scenario_text([dict(vcpus=2, mem_mib=400, limit=2, res=0, start=0, cpu=1)],
                             4), "m.toml")
    host = SimHost(sc)
    host.apply([SetHome("c0", -1, 0, Reason.INITIAL)])
    host.advance_to(2.0)
    total = host.pages[0].sum()
    assert host.pages[0, 0] == total == 400 * 256
    host.apply([SetHome("c0", 0, 1, Reason.BALANCE)])
    host.apply([MigratePages("c0", 0, 1, 50_000)])
    host.advance_to(4.0)
    assert host.pages[0].sum() == total
    assert host.pages[0, 1] == 50_000
    assert host.pages_migrated == 50_000
