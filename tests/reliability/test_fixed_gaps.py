"""Bad inputs found by fuzzing (issue 7) that were once accepted or ended in a
traceback, each now one InputError (or, for a kernel file, a ParseError) naming the
field and the value; their end-to-end rows are in docs/bad-input.md."""

from __future__ import annotations

import math

import pytest
from fuzz_support import memory_cap

from homenode.errors import InputError
from homenode.linux import config
from homenode.linux.kernel import procfs
from homenode.linux.kernel.errors import ParseError
from homenode.settings import Settings
from homenode.sim import scenario as scenarios
from homenode.units import parse_duration, parse_size

SCENARIO = 'duration = "60s"\n[host]\nnodes = 2\n{host}\n[[clients]]\nname = "a"\n{client}\n'


def _scenario(host: str = "", client: str = "") -> None:
    with memory_cap():
        scenarios.parse(SCENARIO.format(host=host, client=client), "gap.toml")


GAPS = [
    ("units.parse_size(-inf)", lambda: parse_size(-math.inf, "x")),
    ("units.parse_duration(inf)", lambda: parse_duration(math.inf, "x")),
    ("units.parse_duration('1e400')", lambda: parse_duration("1e400", "x")),
    ("units.parse_duration beyond a year", lambda: parse_duration("400d", "x")),
    ("units.parse_size beyond 1 PiB", lambda: parse_size("2048TiB", "x")),
    ("settings --set swap_interval=inf", lambda: Settings.from_mapping(
        {"swap_interval": math.inf})),
    ("settings mig_threshold = nan", lambda: Settings.from_mapping({"mig_threshold": "nan"})),
    ("scenario nodes = 1e9", lambda: scenarios.parse(
        SCENARIO.format(host="", client="").replace("nodes = 2", "nodes = 1000000000"),
        "gap.toml")),
    ("scenario sockets x nodes_per_socket", lambda: scenarios.parse(
        SCENARIO.format(host="", client="").replace("nodes = 2",
                                                    "sockets = 1000\nnodes_per_socket = 1000"),
        "gap.toml")),
    ("scenario distances of 2**70", lambda: _scenario(
        host="distances = [[10, 1180591620717411303424], [21, 10]]")),
    ("scenario step demand without at", lambda: _scenario(
        client='demand = { kind = "step", cpu = 1, to = 2 }')),
    ("scenario VM larger than the host", lambda: _scenario(client='memory = "1TiB"')),
    ("scenario empty file", lambda: scenarios.parse("", "gap.toml")),
    ("scenario [settings] mig_threshold = nan", lambda: scenarios.parse(
        "[settings]\nmig_threshold = nan\n", "gap.toml")),
    ("scenario trace values with inf", lambda: _scenario(
        client='demand = { kind = "trace", values = [1, inf] }')),
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


@pytest.mark.parametrize("name,call", GAPS, ids=[g[0] for g in GAPS])
def test_refused_with_one_line(name, call):
    """Once a gap (a strict xfail until issue 14); now one line naming field and value."""
    with pytest.raises(InputError) as e:
        call()
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("text", ["cpu0", "cpu0 1 2 3", "cpu0 1 2 3 x 5 6 7 8",
                                  "cpu0 1 2 3 \u0663 5 6 7 8", "cpu0x 1 2 3 4 5 6 7 8"])
def test_malformed_proc_stat_is_a_parse_error(text):
    with pytest.raises(ParseError):
        procfs.parse_proc_stat(text)


def test_a_good_proc_stat_still_parses():
    assert procfs.parse_proc_stat("cpu  9 9 9 9 9 9 9 9\ncpu3 1 2 3 4 5 6 7 8 9 10\n") == \
        {3: (36 - 9, 36)}
