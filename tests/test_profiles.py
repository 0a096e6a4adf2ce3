"""Host memory profiles (sim/profiles.py): latency and bandwidth per distance class, and
remote links that saturate when many clients read across them."""

import numpy as np
import pytest

from homenode.errors import InputError
from homenode.sim.profiles import PROFILES, link_flows, link_slowdown
from homenode.sim.scenario import parse
from homenode.simulation import simulate


def remote_clients(count: int, profile: str = 'profile = "xeon-2s"', extra: str = "") -> str:
    return f"""
duration = 30
seed = 1
[host]
{profile}
nodes = 2
cores_per_node = 16
memory_per_node = "64GiB"
{extra}
[[clients]]
name = "vm{{i}}"
count = {count}
vcpus = 2
memory = "2GiB"
start_home = 0
memory_on = 1
mem_intensity = 0.8
demand = {{ kind = "constant", cpu = 2 }}
"""


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_each_profile_gives_its_latencies_at_its_distances(name):
    p = PROFILES[name]
    for d, lat, bw in p.points:
        assert p.latency(np.array([d]))[0] == pytest.approx(lat)
        assert p.bandwidth(np.array([d]))[0] == pytest.approx(bw)
    # farther is never faster nor wider
    d = np.arange(10, 40)
    assert (np.diff(p.latency(d)) >= 0).all() and (np.diff(p.bandwidth(d)) <= 0).all()


def test_a_profile_sets_the_distances_and_latencies():
    sc = parse(remote_clients(1, 'profile = "epyc-nps1"'), "p.toml")
    assert sc.host.topology.distance[0, 1] == 32
    assert sc.host.latency_ratio()[0, 1] == pytest.approx(2.4)


def test_many_remote_clients_saturate_the_link():
    def per_client(count: int) -> float:
        return simulate(parse(remote_clients(count), "p.toml"), "static",
                        plots=False).summary["throughput_vs_ideal"]
    few, many = per_client(2), per_client(14)
    # 2 clients x 2 cores x 0.8 x 4 GiB/s fit in the 50 GiB/s link, 14 do not
    assert few == pytest.approx(1 / (0.2 + 0.8 * 1.76), rel=2e-3)
    assert many < few * 0.85
    # without a profile there is no link limit
    flat = simulate(parse(remote_clients(14, ""), "p.toml"), "static", plots=False).summary
    assert flat["throughput_vs_ideal"] > many


def test_link_arithmetic():
    flow = link_flows(np.array([0, 0, -1]), np.array([10.0, 10.0, 99.0]),
                      np.array([[1, 3], [0, 2], [5, 5]]), 2)
    assert flow.tolist() == [[2.5, 17.5], [0.0, 0.0]]
    cap = np.full((2, 2), 10.0)
    assert link_slowdown(flow, cap).tolist() == [[1.0, 1.75], [1.0, 1.0]]


def test_cxl_nodes_hold_memory_but_no_cpus():
    sc = parse(remote_clients(2, 'profile = "cxl"\nnodes = 3', 'memory_only_nodes = [2]')
               .replace("nodes = 2\n", "", 1), "p.toml")
    topo = sc.host.topology
    assert topo.cores.tolist() == [16.0, 16.0, 0.0] and topo.cpus[2] == ()
    assert topo.distance[0, 2] == topo.distance[2, 1] == 24
    assert sc.host.latency_ratio()[0, 2] == pytest.approx(2.5)
    r = simulate(sc, "esxi", plots=False)
    assert all(int(h) != 2 for s in r.recorder.samples for h in s.home)


@pytest.mark.parametrize("text, field", [
    ('profile = "vax"', "host.profile"),
    ('memory_bandwidth = "10GiB"', "host.memory_bandwidth"),
    ('profile = "snc"\nremote_latency = 1.5', "host.remote_latency"),
])
def test_bad_profiles_are_one_line_naming_the_field(text, field):
    with pytest.raises(InputError, match=field.replace(".", r"\.")):
        parse(remote_clients(1, text), "p.toml")
