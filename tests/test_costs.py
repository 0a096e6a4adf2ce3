"""What each policy pays (sim/costs.py): the host charges every kind of work it reports."""

import pytest

from homenode.errors import InputError
from homenode.model import MigratePages, Reason, SetHome, Work
from homenode.sim.costs import Costs, autonuma_window_cpu, daemon_cpu, work_cpu
from homenode.sim.host import SimHost
from homenode.sim.scenario import parse
from homenode.simulation import simulate

HOST = """
duration = 60
seed = 2
[host]
nodes = 2
cores_per_node = 4
memory_per_node = "8GiB"
{costs}
[[clients]]
name = "a"
vcpus = 2
memory = "2GiB"
demand = {{ kind = "constant", cpu = 2 }}
[[clients]]
name = "b"
vcpus = 2
memory = "2GiB"
start_home = 0
demand = {{ kind = "constant", cpu = 2 }}
"""


def scenario(costs: str = ""):
    return parse(HOST.format(costs=costs), "costs.toml")


FREE = "[host.costs]\n" + "\n".join(f"{k} = 0.0" for k in (
    "hint_fault", "scan_page", "task_move", "proc_read", "numa_maps_page", "homenode_daemon"))


def test_autonuma_pays_its_scans_and_hinting_faults_from_the_clients_cpu():
    paid = simulate(scenario(), "autonuma", plots=False).summary
    free = simulate(scenario(FREE), "autonuma", plots=False).summary
    work = paid["overhead"]["work"]
    assert work["hint_fault"] == work["scan_page"] > 0
    c = Costs()
    assert paid["overhead"]["cpu_s"]["hint_fault"] == pytest.approx(
        work["hint_fault"] * c.hint_fault, rel=1e-4)
    assert paid["throughput_vs_ideal"] < free["throughput_vs_ideal"]
    assert free["overhead_cpu_s"] == 0.0


def test_homenode_pays_its_daemon_and_numad_its_proc_reads():
    esxi = simulate(scenario(), "esxi", plots=False).summary
    assert esxi["overhead"]["cpu_s"]["daemon"] == pytest.approx(
        daemon_cpu("esxi", 60.0, Costs()), rel=1e-6)
    numad = simulate(scenario(), "numad", plots=False).summary
    assert numad["overhead"]["work"]["proc_read"] >= 2
    assert "daemon" not in numad["overhead"]["cpu_s"]
    static = simulate(scenario(), "static", plots=False).summary
    assert static["overhead_cpu_s"] == 0.0


def test_a_task_move_costs_the_moved_client_a_cache_refill():
    host = SimHost(scenario())
    host.apply([SetHome("a", -1, 0, Reason.INITIAL)])       # placement is not a move
    assert host.debt.sum() == 0
    host.apply([SetHome("b", 0, 1, Reason.BALANCE)])
    assert host.debt[host.slot["b"]] == Costs().task_move
    assert host.work_done == {"task_move": 1}


def test_autonumas_copies_run_in_the_task_and_homenodes_on_the_host():
    for reason, in_task in ((Reason.AUTONUMA, True), (Reason.MEMORY, False)):
        host = SimHost(scenario(FREE))
        host.advance_to(3.0)                                  # b touches its 2 GiB on 0
        host.apply([SetHome("b", 0, 1, Reason.BALANCE), MigratePages("b", 0, 1, 1000, reason)])
        host.advance_to(4.0)
        assert host.pages_migrated == 1000
        assert ("copy_in_task" in host.overhead_cpu) is in_task


def test_work_is_priced_by_the_pure_functions():
    c = Costs()
    assert work_cpu("proc_read", 10, c) == 10 * c.proc_read
    assert autonuma_window_cpu(65536, c) == pytest.approx(65536 * (c.scan_page + c.hint_fault))
    host = SimHost(scenario())
    host.account([Work("proc_read", 3.0), Work("hint_fault", 5.0, "b")])
    assert host.daemon_debt == 3 * c.proc_read
    # a page faults only once touched: b has not run yet
    assert host.debt[host.slot["b"]] == 0
    host.advance_to(1.0)
    host.account([Work("hint_fault", 5.0, "b")])
    assert host.debt[host.slot["b"]] == 5 * c.hint_fault


def test_hinting_faults_are_limited_by_how_fast_the_client_touches_its_pages():
    # the same scenario, b touching 4 MiB/s
    sc = parse(HOST.format(costs="").replace('start_home = 0\n',
                                             'start_home = 0\ntouch_rate = "4MiB"\n'),
               "slow.toml")
    host = SimHost(sc)
    host.advance_to(2.0)                  # 2 s x 1 CPU x 1024 pages/s
    host.account([Work("hint_fault", 1e6, "b")])
    assert host.work_done["hint_fault"] == pytest.approx(2048, rel=0.06)


def test_an_unknown_cost_is_one_line_naming_it():
    with pytest.raises(InputError, match=r"host\.costs\.hint_faults"):
        scenario("[host.costs]\nhint_faults = 1e-6")
    with pytest.raises(InputError, match=r"host\.costs\.task_move"):
        scenario("[host.costs]\ntask_move = -1")
