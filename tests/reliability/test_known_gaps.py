"""Bad inputs found by fuzzing that other modules do not refuse yet (docs/bad-input.md,
"Found while fuzzing").  Each should be one InputError (or, for a kernel file, a
ParseError); until it is, the test fails as expected.  The xfails are strict: a fix
makes them pass, and then the row belongs in the catalogue instead."""

from __future__ import annotations

import math

import pytest
from fuzz_support import memory_cap

from homenode.errors import InputError
from homenode.linux import advice, config
from homenode.linux.errors import ParseError
from homenode.sim import scenario as scenarios
from homenode.units import parse_duration, parse_size

SCENARIO = 'duration = "60s"\n[host]\nnodes = 2\n{host}\n[[clients]]\nname = "a"\n{client}\n'


def _scenario(host: str = "", client: str = "") -> None:
    with memory_cap():
        scenarios.parse(SCENARIO.format(host=host, client=client), "gap.toml")


GAPS = [
    ("units.parse_size(inf)", lambda: parse_size(math.inf, "x")),
    ("units.parse_size(nan)", lambda: parse_size(math.nan, "x")),
    ("units.parse_size('1e400MiB')", lambda: parse_size("1e400MiB", "x")),
    ("units.parse_duration(nan)", lambda: parse_duration(math.nan, "x")),
    ("units.parse_duration('1e400s')", lambda: parse_duration("1e400s", "x")),
    ("config processes.min_rss = inf", lambda: config.parse("[processes]\nmin_rss = inf")),
    ("config daemon.interval = nan", lambda: config.parse("[daemon]\ninterval = nan")),
    ("config processes.min_cpu = nan", lambda: config.parse("[processes]\nmin_cpu = nan")),
    ("config settings.rebalance_period = nan",
     lambda: config.parse("[settings]\nrebalance_period = nan")),
    ("scenario duration = inf", lambda: scenarios.parse(
        SCENARIO.format(host="", client="").replace('"60s"', "inf"), "gap.toml")),
    ("scenario memory_per_node = inf", lambda: _scenario(host="memory_per_node = inf")),
    ("scenario cores_per_node = 1e9", lambda: _scenario(host="cores_per_node = 1000000000")),
    ("scenario threads_per_core = 2**62",
     lambda: _scenario(host="threads_per_core = 4611686018427387904")),
]


@pytest.mark.xfail(strict=True, reason="not refused yet: see docs/bad-input.md")
@pytest.mark.parametrize("name,call", GAPS, ids=[g[0] for g in GAPS])
def test_refused_with_one_line(name, call):
    with pytest.raises(InputError) as e:
        call()
    assert "\n" not in str(e.value)


@pytest.mark.xfail(strict=True, reason="advice.parse_proc_stat: IndexError on 'cpu0'")
def test_malformed_proc_stat_is_a_parse_error():
    with pytest.raises(ParseError):
        advice.parse_proc_stat("cpu0")
