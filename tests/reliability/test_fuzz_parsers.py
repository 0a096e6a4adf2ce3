"""Fuzzing every parser: only the documented error may ever escape.

- kernel files (cpulist, node meminfo, distance, numa_maps, /proc/PID/stat, schedstat,
  status, maps, /proc/stat, mountinfo, the cgroup files): ``homenode.linux.kernel.errors
  .ParseError`` (docs: linux/errors.py), or nothing;
- the daemon's TOML config, scenario files, traces, sizes and durations given on the
  command line: ``homenode.errors.InputError`` (one line naming the field and value);
- status API requests: never an exception -- a one-line ``{"ok": false, "error": ...}``
  answer that encodes as JSON;
- the daemon's state file: ``ValueError`` (it is then ignored).

Each test also checks what a successful parse returns (types, ranges, round trips), so
a parser that silently accepts garbage fails too.  Example counts: conftest.py.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import pytest
from fuzz_support import (
    FUZZ_COUNTS,
    counted,
    doc_mutation,
    fuzz_settings,
    int_text,
    junk,
    lines_of,
    memory_cap,
    one_field_changed,
    sweep,
    text_or_mutated,
    token,
    toml_doc,
    value,
)
from hypothesis import given
from hypothesis import strategies as st
from linux_support import PROC, SYS_SPARSE

from homenode.cli.params import Count, Duration, Number, Size
from homenode.errors import InputError
from homenode.inputs import (
    MAX_CLIENTS,
    MAX_CPUS,
    MAX_DURATION,
    MAX_NODES,
    MAX_SIZE,
    MAX_VCPUS,
)
from homenode.linux import config, state
from homenode.linux.kernel import cgroup, procfs, sysfs
from homenode.linux.kernel.errors import ParseError
from homenode.ops import api
from homenode.ops.status import StatusRecorder
from homenode.settings import Settings
from homenode.sim import scenario as scenarios
from homenode.sim import traces
from homenode.units import parse_duration, parse_size

NODE = SYS_SPARSE / "devices/system/node"
FIX_TRACES = Path(__file__).parents[1] / "fixtures" / "traces"


def _read(*paths: Path) -> list[str]:
    return [p.read_text() for p in paths if p.is_file()]


# --- sysfs ---------------------------------------------------------------------------------

cpulist_grammar = st.lists(
    st.one_of(int_text, st.tuples(int_text, int_text).map("-".join)), min_size=1,
    max_size=6).map(",".join)


@fuzz_settings()
@given(text_or_mutated(["0-3,8,10-11", "0", "", "0-1023", "5,7"], cpulist_grammar))
@counted("cpulist")
def test_cpulist(text):
    try:
        out = sysfs.parse_cpulist(text)
    except ParseError:
        return
    assert out == tuple(sorted(set(out))) and all(isinstance(c, int) and c >= 0 for c in out)
    assert sysfs.parse_cpulist(sysfs.format_cpulist(out)) == out


meminfo_line = st.builds(lambda n, k, v, u: f"Node {n} {k}: {v}{u}", int_text,
                         st.sampled_from(["MemTotal", "MemFree", "Inactive(file)",
                                          "HugePages_Total", "", "Mem Free"]),
                         int_text, st.sampled_from([" kB", "", " MB", "kB"]))


@fuzz_settings()
@given(text_or_mutated(_read(*NODE.glob("node*/meminfo")), lines_of(meminfo_line)))
@counted("meminfo")
def test_node_meminfo(text):
    try:
        out = sysfs.parse_node_meminfo(text)
    except ParseError:
        return
    assert "MemTotal" in out and all(isinstance(v, int) and v >= 0 for v in out.values())


@fuzz_settings()
@given(text_or_mutated(_read(*NODE.glob("node*/distance")),
                       st.lists(int_text, max_size=6).map(" ".join)))
@counted("distance")
def test_distance(text):
    try:
        row = sysfs.parse_distance(text)
    except ParseError:
        return
    assert row and all(0 < d <= 255 for d in row)


# --- /proc ---------------------------------------------------------------------------------

numa_maps_line = st.builds(
    lambda addr, pol, toks: " ".join([addr, pol, *toks]),
    st.one_of(st.integers(0, 2**64).map(lambda a: f"{a:x}"), token),
    st.sampled_from(["default", "bind:0-1", "interleave:0,2", "prefer:1", "local",
                     "weighted interleave:0-1", "prefer (many):0,1", "bind", "x:y", ""]),
    st.lists(st.one_of(
        st.builds(lambda n, c: f"N{n}={c}", int_text, int_text),
        st.builds(lambda k, v: f"{k}={v}", st.sampled_from(
            ["anon", "dirty", "kernelpagesize_kB", "file", "mapmax", "active", "N"]),
            st.one_of(int_text, junk.map(lambda s: s.replace(" ", "")))),
        st.sampled_from(["huge", "heap", "stack", "file=/memfd:x", "file=/dev/shm/a"]),
        token), max_size=8))


@fuzz_settings()
@given(text_or_mutated(_read(*PROC.glob("*/numa_maps")), lines_of(numa_maps_line)),
       st.booleans())
@counted("numa_maps")
def test_numa_maps(text, own_only):
    try:
        vmas = procfs.parse_numa_maps(text, own_only)
    except ParseError:
        return
    pages = procfs.node_pages(vmas)
    assert all(isinstance(n, int) and isinstance(c, int) for n, c in pages.items())
    assert all(c >= 0 for c in pages.values()), pages       # page counts are never negative
    assert 0.0 <= procfs.bound_fraction(vmas) <= 1.0


stat_line = st.builds(
    lambda pid, comm, fields: f"{pid} ({comm}) {' '.join(fields)}",
    int_text, junk, st.lists(st.one_of(st.integers(0, 2**64).map(str), token),
                             min_size=0, max_size=52))


@fuzz_settings()
@given(st.one_of(text_or_mutated(_read(*PROC.glob("*/stat")), stat_line),
                 st.binary(max_size=300)))
@counted("stat (/proc/PID/stat)")
def test_proc_pid_stat(data):
    try:
        st_ = procfs.parse_stat(data)
    except ParseError:
        return
    assert isinstance(st_.pid, int) and isinstance(st_.starttime, int)
    assert isinstance(st_.kernel_thread, bool) and isinstance(st_.rss_bytes, int)


@fuzz_settings()
@given(st.one_of(junk, st.lists(int_text, max_size=4).map(" ".join)))
@counted("schedstat")
def test_schedstat(text):
    try:
        run, wait = procfs.parse_schedstat(text)
    except ParseError:
        return
    assert isinstance(run, int) and isinstance(wait, int)


@fuzz_settings()
@given(text_or_mutated(_read(*PROC.glob("*/status"))), st.sampled_from(
    ["Cpus_allowed_list", "Mems_allowed_list", "Threads", "Name", ""]))
@counted("status")
def test_status(text, key):
    fields = procfs.parse_status(text)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())
    assert isinstance(procfs.status_field(text.encode(), key), str)
    try:
        procfs.allowed_cpus(fields)
        procfs.allowed_mems(fields)
    except ParseError:
        pass


maps_line = st.builds(lambda a, b, perms, rest: f"{a}-{b} {perms} {rest}",
                      st.one_of(st.integers(0, 2**64).map(lambda x: f"{x:x}"), token),
                      st.one_of(st.integers(0, 2**64).map(lambda x: f"{x:x}"), token),
                      st.sampled_from(["rw-p", "r--s", "----", "", "rwxp"]), junk)


@fuzz_settings()
@given(text_or_mutated(_read(*PROC.glob("*/maps")), lines_of(maps_line)))
@counted("maps")
def test_maps(text):
    try:
        maps = procfs.parse_maps(text)
    except ParseError:
        return
    assert all(isinstance(m.start, int) and isinstance(m.writable, bool) for m in maps)


proc_stat_line = st.builds(lambda cpu, vals: f"{cpu} {' '.join(vals)}",
                           st.sampled_from(["cpu", "cpu0", "cpu1", "cpu12", "cpux", "intr"]),
                           st.lists(st.one_of(st.integers(0, 2**40).map(str), token),
                                    max_size=11))


@fuzz_settings()
@given(st.one_of(junk, lines_of(proc_stat_line)))
@counted("stat (/proc/stat)")
def test_proc_stat(text):
    """``homenode place`` samples /proc/stat (homenode.linux.advice)."""
    try:
        out = procfs.parse_proc_stat(text)
    except ParseError:
        return
    assert all(isinstance(b, int) and isinstance(t, int) for b, t in out.values())


mountinfo_line = st.builds(
    lambda ids, mnt, fs: f"{ids} 0:26 / {mnt} rw,nosuid - {fs} cgroup2 rw",
    st.sampled_from(["35 24", "1 1", "x", ""]), st.one_of(junk, st.just("/sys/fs/cgroup")),
    st.sampled_from(["cgroup2", "cgroup", "tmpfs", ""]))


@fuzz_settings(0.5)
@given(st.one_of(junk, lines_of(mountinfo_line)))
@counted("mountinfo")
def test_mountinfo(tmp_path_factory, text):
    proc = tmp_path_factory.mktemp("mi")
    (proc / "self").mkdir()
    (proc / "self" / "mountinfo").write_text(text)
    root = cgroup.find_root(str(proc))
    assert root is None or isinstance(root, Path)


# --- cgroup files ------------------------------------------------------------------------------

@fuzz_settings()
@given(st.one_of(junk, lines_of(st.lists(token, max_size=3).map(" ".join))))
@counted("cgroup cpu.stat")
def test_cgroup_flat_keyed(text):
    try:
        out = cgroup.parse_flat_keyed(text)
    except ParseError:
        return
    assert all(isinstance(v, int) for v in out.values())


numa_stat_line = st.builds(lambda k, toks: " ".join([k, *toks]),
                           st.sampled_from(["anon", "shmem", "file", "", "N0=1"]),
                           st.lists(st.one_of(st.builds(lambda n, b: f"N{n}={b}", int_text,
                                                        int_text), token), max_size=4))


@fuzz_settings()
@given(st.one_of(junk, lines_of(numa_stat_line)))
@counted("cgroup memory.numa_stat")
def test_cgroup_numa_stat(text):
    try:
        out = cgroup.numa_pages(cgroup.parse_numa_stat(text))
    except ParseError:
        return
    assert all(isinstance(n, int) and isinstance(p, int) for n, p in out.items())


@fuzz_settings()
@given(st.one_of(junk, st.lists(int_text | st.just("max"), max_size=3).map(" ".join)))
@counted("cgroup cpu.max")
def test_cgroup_cpu_max(text):
    try:
        limit = cgroup.parse_cpu_max(text)
    except ParseError:
        return
    assert limit > 0


@fuzz_settings()
@given(st.one_of(junk, lines_of(st.builds(
    lambda w, toks: " ".join([w, *toks]), st.sampled_from(["some", "full", ""]),
    st.lists(st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["avg10", "total", "x"]),
                       int_text) | token, max_size=4)))))
@counted("cgroup cpu.pressure")
def test_cgroup_pressure(text):
    with contextlib.suppress(ParseError):
        assert isinstance(cgroup.parse_pressure_total(text), int)


@fuzz_settings()
@given(st.one_of(junk, st.lists(int_text | st.just("max"), max_size=2).map(" ".join)),
       st.sampled_from(["cpu.weight", "memory.max", "cpuset.cpus", "cgroup.procs"]))
@counted("cgroup small files")
def test_cgroup_small_files(tmp_path_factory, text, name):
    """The readers that fall back to a default on a bad value (cpu.weight, memory.max,
    cpuset.cpus) or skip it (cgroup.procs is read by member_pids)."""
    cg = tmp_path_factory.mktemp("cg")
    (cg / name).write_text(text)
    assert isinstance(cgroup.cpu_weight(cg), int)
    mem = cgroup.memory_max(cg)
    assert mem is None or isinstance(mem, int)
    try:
        cpus = cgroup.read_cpuset(cg, "cpuset.cpus")
        assert cpus is None or all(c >= 0 for c in cpus)
        pids = cgroup.member_pids(cg)
        assert all(isinstance(p, int) for p in pids)
    except ParseError:
        pass
    except ValueError:
        pytest.fail(f"cgroup.procs {text!r}: ValueError escaped member_pids")


# --- the daemon's config ------------------------------------------------------------------------

CONFIG_SAMPLE = {
    "daemon": {"policy": "esxi", "interval": "2s", "dry_run": False, "scan_interval": "10s",
               "numa_maps_interval": "10s", "migration": "paced", "manage_bound": False,
               "log_format": "text", "state_file": "auto", "restore_on_exit": True},
    "processes": {"pids": [1234], "cmdline": ["worker\\.py"], "auto": True,
                  "min_rss": "300MiB", "min_cpu": 0.5, "vms": True, "exclude": ["^sshd"]},
    "cgroups": {"root": "", "parents": ["machine.slice"]},
    "settings": {"rebalance_period": 2.0, "page_mig_rate_max": 32000, "mig_threshold": 2.0},
}


@fuzz_settings()
@given(st.one_of(junk, doc_mutation(CONFIG_SAMPLE).map(toml_doc),
                 one_field_changed(CONFIG_SAMPLE).map(toml_doc),
                 st.just(toml_doc(CONFIG_SAMPLE)).flatmap(
                     lambda s: text_or_mutated([s]))))
@counted("config (TOML)")
def test_config(text):
    cfg = _parse(config.parse, text)
    if cfg is None:
        return
    d = cfg.daemon
    assert all(map(math.isfinite, (d.interval, d.scan_interval, d.numa_maps_interval)))
    assert math.isfinite(cfg.processes.min_cpu)
    _check_settings(cfg.settings.changed())
    assert d.interval >= config.MIN_INTERVAL and d.scan_interval >= config.MIN_INTERVAL
    assert d.migration in config.MIGRATION_MODES and cfg.processes.min_rss >= 0
    assert cfg.processes.min_cpu >= 0
    assert d.state_file in ("auto", "off") or d.state_file.startswith("/")


def _parse(parse, text):
    """``parse(text)`` under a memory cap (a host too big to allocate must be refused,
    not hit the cap); None for the documented error (one line); anything else fails."""
    with memory_cap():
        try:
            return parse(text, "fuzz.toml")
        except InputError as e:
            assert "\n" not in str(e), str(e)
            return None


def _check_settings(values: dict) -> None:
    assert all(math.isfinite(v) for v in values.values()
               if isinstance(v, float | int) and not isinstance(v, bool)), values


# --- scenarios and traces -------------------------------------------------------------------------

def _builtin_docs() -> list[dict]:
    import tomllib
    return [tomllib.loads((Path(scenarios.__file__).parent / "scenarios" / f"{n}.toml")
                          .read_text()) for n in ("burst", "pools", "wide", "shift")]


SCENARIO_DOCS = _builtin_docs()


@fuzz_settings(0.5)
@given(st.one_of(junk, st.sampled_from(SCENARIO_DOCS).flatmap(doc_mutation).map(toml_doc),
                 st.sampled_from(SCENARIO_DOCS).flatmap(one_field_changed).map(toml_doc),
                 st.sampled_from(SCENARIO_DOCS).map(toml_doc).flatmap(
                     lambda s: text_or_mutated([s]))))
@counted("scenario (TOML)")
def test_scenario(text):
    sc = _parse(scenarios.parse, text)
    if sc is None:
        return
    _scenario_bounded(sc)
    _check_settings(sc.settings)
    assert sc.duration > 0 and sc.host.topology.n >= 1
    assert all(c.client.vcpus >= 1 for c in sc.clients)


@fuzz_settings(0.5)
@given(text_or_mutated(_read(*(FIX_TRACES / "bitbrains").glob("*.csv"))))
@counted("trace (Bitbrains)")
def test_bitbrains_trace(tmp_path_factory, text):
    p = tmp_path_factory.mktemp("tr") / "vm.csv"
    p.write_text(text)
    try:
        tr = traces.read_bitbrains(p)
    except InputError as e:
        assert "\n" not in str(e)
        return
    assert len(tr) >= 2 and (tr.cpu >= 0).all()


@fuzz_settings(0.5)
@given(text_or_mutated(_read(*(FIX_TRACES / "planetlab").iterdir()),
                       lines_of(int_text, 30)), st.integers(1, 8))
@counted("trace (PlanetLab)")
def test_planetlab_trace(tmp_path_factory, text, cores):
    p = tmp_path_factory.mktemp("tr") / "slice"
    p.write_text(text)
    try:
        tr = traces.read_planetlab(p, cores)
    except InputError as e:
        assert "\n" not in str(e)
        return
    assert len(tr) >= 1 and (tr.cpu >= 0).all()


@fuzz_settings()
@given(st.one_of(junk, int_text, st.floats(allow_nan=True), st.integers(),
                 st.builds(lambda n, u: f"{n}{u}", int_text,
                           st.sampled_from(["s", "ms", "m", "h", "MiB", "GiB", "kB", "x",
                                            " s", "", "TiB", "us"]))))
@counted("sizes and durations (CLI)")
def test_sizes_and_durations(v):
    for parse in (parse_size, parse_duration):
        try:
            out = parse(v, "--x")
        except InputError as e:
            assert "\n" not in str(e)
            continue
        assert isinstance(out, int | float) and out >= 0 and math.isfinite(out)
        assert out <= (MAX_SIZE if parse is parse_size else MAX_DURATION)


# --- status API --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def recorder() -> StatusRecorder:
    """A recorder that has seen a short simulation: client and explain answer for real."""
    from homenode import loop
    from homenode.ops.status import TimedHost
    from homenode.policy import make_policy
    from homenode.settings import Settings
    from homenode.sim.host import SimClock, SimHost

    sc = scenarios.load("burst")
    host = SimHost(sc, sc.seed)
    cfg = Settings.from_mapping(sc.settings, where=sc.source)
    rec = StatusRecorder(sc.host.topology, source="simulation", policy="esxi",
                         scenario=sc.name, settings=cfg)
    loop.run(TimedHost(host, rec), make_policy("esxi", cfg), SimClock(host), duration=20,
             interval=1.0, recorder=rec)
    return rec


value_small = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), junk,
                        st.lists(st.integers(), max_size=2))
request_obj = st.dictionaries(
    st.sampled_from(["get", "client", "x", "", "GET"]),
    st.one_of(st.sampled_from(["status", "ping", "topology", "client", "explain", "clients",
                               "vm-1", "web01", ""]), value_small), max_size=3)


@fuzz_settings()
@given(st.one_of(st.binary(max_size=200), junk.map(str.encode),
                 request_obj.map(lambda d: json.dumps(d).encode()),
                 st.one_of(value_small, st.lists(value_small, max_size=3)).map(
                     lambda v: json.dumps(v).encode())))
@counted("status API request")
def test_api_request(recorder, line):
    reply = api.handle_request(recorder, line)
    encoded = api._encode(reply)                       # what the server sends
    assert encoded.endswith(b"\n") and encoded.count(b"\n") == 1
    assert isinstance(reply["ok"], bool)
    if not reply["ok"]:
        assert "\n" not in reply["error"] and reply["error"]


# --- the daemon's own state file ------------------------------------------------------------

STATE_SAMPLE = state.dumps(state.Saved(
    {(42, 7): state.ProcRecord(42, 7, frozenset({0, 1}), frozenset({2}), frozenset(range(4)),
                               {43: frozenset({3})}, 0, 1.5e9)},
    {"machine.slice/vm": state.CgroupRecord("machine.slice/vm", frozenset({0}), None, "",
                                            0, 1.5e9, [])}), "boot")


@fuzz_settings()
@given(st.one_of(st.binary(max_size=200), text_or_mutated(
    [STATE_SAMPLE, STATE_SAMPLE.replace(",", ", ").replace("{", "{\n")])))
@counted("state file")
def test_state_file(text):
    try:
        saved = state.loads(text, "boot")
    except ValueError as e:
        assert type(e) is ValueError and "\n" not in str(e)
        return
    assert state.loads(state.dumps(saved, "boot"), "boot") == saved


# --- one field at a time: every field of a good document meets every special value -----------

def _sweep(name: str, parse, docs: list[dict], check) -> None:
    failures = []
    for doc in docs:
        for path, v, changed in sweep(doc):
            FUZZ_COUNTS[name] += 1
            try:
                result = _parse(parse, toml_doc(changed))
                if result is not None:
                    check(result)
            except Exception as e:        # collect every failure, report them together
                failures.append(f"{'.'.join(map(str, path))} = {v!r}: {type(e).__name__}: "
                                f"{str(e)[:120]}")
    assert not failures, "\n".join(failures[:40])


def _config_ok(cfg) -> None:
    d = cfg.daemon
    assert all(map(math.isfinite, (d.interval, d.scan_interval, d.numa_maps_interval)))
    assert math.isfinite(cfg.processes.min_cpu)
    _check_settings(cfg.settings.changed())
    assert d.interval >= config.MIN_INTERVAL and cfg.processes.min_rss >= 0


def _scenario_bounded(sc) -> None:
    """What the input layer promises of every scenario it accepts."""
    topo = sc.host.topology
    assert 0 < sc.duration <= MAX_DURATION
    assert all(math.isfinite(c.start) and 0 <= c.start <= MAX_DURATION for c in sc.clients)
    assert 1 <= topo.n <= MAX_NODES and sum(len(c) for c in topo.cpus) <= MAX_CPUS
    assert len(sc.clients) <= MAX_CLIENTS and all(
        1 <= c.client.vcpus <= MAX_VCPUS and 0 <= c.client.mem_bytes <= MAX_SIZE
        for c in sc.clients)


def _scenario_ok(sc) -> None:
    _scenario_bounded(sc)
    _check_settings(sc.settings)
    assert sc.duration > 0 and sc.host.topology.n >= 1


def test_config_every_field_every_special_value():
    _sweep("config (TOML)", config.parse, [CONFIG_SAMPLE], _config_ok)


@pytest.mark.slow
def test_scenario_every_field_every_special_value():
    _sweep("scenario (TOML)", scenarios.parse, SCENARIO_DOCS[:2], _scenario_ok)


# --- the input layer itself: settings, group rules, command-line types --------------------------

SETTING_NAMES = [f.name for f in Settings.specs()]


@fuzz_settings()
@given(st.dictionaries(st.sampled_from([*SETTING_NAMES, "nope"]),
                       st.one_of(value, int_text, st.floats(allow_nan=True)), max_size=3))
@counted("settings ([settings], --set)")
def test_settings_values(values):
    """Every setting, from TOML or as ``--set`` text: refused in one line, or finite and
    within the setting's declared range."""
    try:
        cfg = Settings.from_mapping(values)
    except InputError as e:
        assert "\n" not in str(e)
        return
    for f in Settings.specs():
        v = getattr(cfg, f.name)
        if isinstance(v, bool | str):     # str: a validated table (slit_latency)
            continue
        lo, hi = f.metadata["min"], f.metadata["max"]
        assert math.isfinite(v) and (lo is None or v >= lo) and (hi is None or v <= hi)


GROUPS_SAMPLE = {
    "groups": [{"name": "web", "members": ["cmdline:nginx", "cgroup:system.slice/x.service",
                                           "name:db1", "pid:4242"]}],
    "constraints": [{"members": ["name:vm7"], "allowed_nodes": [0, 1], "prefer_ht": True}],
    "auto_groups": {"shared_memory": True, "min_shared": "64MiB"},
}


@fuzz_settings()
@given(st.one_of(doc_mutation(GROUPS_SAMPLE).map(toml_doc),
                 one_field_changed(GROUPS_SAMPLE).map(toml_doc)))
@counted("group rules (TOML)")
def test_group_rules(text):
    cfg = _parse(config.parse, text)
    if cfg is None:
        return
    r = cfg.groups
    assert 0 <= r.min_shared <= MAX_SIZE
    assert all(n < MAX_NODES for c in r.constraints for n in (c.allowed_nodes or ()))


def test_group_rules_every_field_every_special_value():
    _sweep("group rules (TOML)", config.parse, [GROUPS_SAMPLE], lambda cfg: None)


CLI_TYPES = [("--duration", Duration(positive=True)), ("--interval", Duration()),
             ("--memory", Size(lo=1)), ("--vcpus", Count(1, MAX_VCPUS)),
             ("--seeds", Count(1, 1000)), ("--speed", Number(0.0, 1e6, positive=True))]


@fuzz_settings()
@given(st.sampled_from(CLI_TYPES), st.one_of(
    junk, int_text, st.floats(allow_nan=True).map(str),
    st.builds(lambda n, u: f"{n}{u}", int_text, st.sampled_from(
        ["s", "ms", "m", "h", "d", "MiB", "GiB", "TiB", "", "x", " s"]))))
@counted("command-line flags")
def test_cli_flag_types(flag_type, text):
    """What a flag's click type accepts is finite and within its bounds; the rest is one
    InputError naming the flag."""
    import click
    flag, kind = flag_type
    param = click.Option([flag])
    try:
        v = kind.convert(text, param, None)
    except InputError as e:
        assert "\n" not in str(e) and str(e).startswith(flag)
        return
    assert math.isfinite(v) and v >= 0
    if isinstance(kind, Count):
        assert kind.lo <= v <= kind.hi
    if isinstance(kind, Duration):
        assert v <= MAX_DURATION and (v > 0 or not kind.positive)
