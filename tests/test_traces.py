"""Trace readers (Bitbrains GWA-T-12, PlanetLab) and the [[traces]] scenario table."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homenode.errors import InputError
from homenode.sim import scenario as scenarios
from homenode.sim import traces
from homenode.sim.demand import DemandTable
from homenode.units import GIB, MIB

FIX = Path(__file__).parent / "fixtures" / "traces"
SHARED = traces.traces_dir()   # $HOMENODE_TRACES_DIR or <repo>/../shared/traces
needs_shared = pytest.mark.skipif(not (SHARED / "bitbrains-rnd-2013-7").is_dir(),
                                  reason=f"no shared traces in {SHARED}")


def one_line(e: InputError) -> str:
    msg = str(e)
    assert "\n" not in msg
    return msg


# --- Bitbrains ---------------------------------------------------------------------------

def test_bitbrains_cpu_is_percent_of_the_vms_cores_and_gaps_hold_the_last_value():
    tr = traces.read_bitbrains(FIX / "bitbrains" / "vm-a.csv")
    # Samples at +0, 300, 599 (jitter), 900, then a gap to 1800, 2100; 4 cores.
    # Grid 0..2100 every 300 s: 10 %, 25 %, 50 %, 100 %, (gap: 100 %, 100 %), 5 %, 0 %.
    assert tr.step == 300.0 and tr.cores == 4
    assert tr.cpu.tolist() == pytest.approx([0.4, 1.0, 2.0, 4.0, 4.0, 4.0, 0.2, 0.0])
    # Memory usage is in KB (KiB): 1048576 KB = 1 GiB.
    assert tr.mem_bytes[0] == GIB and tr.mem_bytes[1] == 2 * GIB


def test_bitbrains_timestamps_in_real_milliseconds_read_the_same():
    tr = traces.read_bitbrains(FIX / "bitbrains" / "vm-b.csv")
    assert tr.step == 300.0 and tr.cores == 2
    assert tr.cpu.tolist() == pytest.approx([1.0, 1.0, 1.5, 2.0])


def _bitbrains_with(tmp_path: Path, edit) -> Path:
    lines = (FIX / "bitbrains" / "vm-a.csv").read_text().splitlines(keepends=True)
    lines = edit(lines)
    p = tmp_path / "bad.csv"
    p.write_text("".join(lines))
    return p


@pytest.mark.parametrize("edit, line, words", [
    (lambda ls: [*ls[:-1], ls[-1][:40]], 7, "truncated"),                  # cut mid-row
    (lambda ls: [ls[0], ls[1].replace(";\t10.0;", ";\tten;"), *ls[2:]], 2, "not a number"),
    (lambda ls: [ls[0], ls[1].replace(";\t10.0;", ";\t-1.0;"), *ls[2:]], 2, "negative"),
    (lambda ls: [ls[0], ls[2], ls[1], *ls[3:]], 3, "increase"),              # out of order
    (lambda ls: [ls[0], ls[1], "\n", *ls[2:]], 3, "blank"),
    (lambda ls: [ls[0], ls[1].replace(";\t4;", ";\t0;", 1), *ls[2:]], 2, "cores"),
    (lambda ls: [ls[0], ls[1].replace(";\t", ",", 3), *ls[2:]], 2, "fields"),
])
def test_bitbrains_bad_rows_are_one_line_errors_naming_file_and_line(tmp_path, edit, line,
                                                                     words):
    p = _bitbrains_with(tmp_path, edit)
    with pytest.raises(InputError) as e:
        traces.read_bitbrains(p)
    assert f"{p}:{line}" in one_line(e.value) and words in str(e.value)


def test_bitbrains_needs_its_header_and_two_samples(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("1;\t2\n")
    with pytest.raises(InputError, match="header"):
        traces.read_bitbrains(p)
    lines = (FIX / "bitbrains" / "vm-a.csv").read_text().splitlines(keepends=True)
    p.write_text("".join(lines[:2]))
    with pytest.raises(InputError, match="two samples"):
        traces.read_bitbrains(p)
    with pytest.raises(InputError, match="no such file"):
        traces.read_bitbrains(tmp_path / "absent.csv")


# --- PlanetLab ---------------------------------------------------------------------------

def test_planetlab_is_percent_of_vcpus_every_five_minutes():
    tr = traces.read_planetlab(FIX / "planetlab" / "slice-a", cores=2)
    assert tr.step == 300.0 and tr.mem_bytes is None
    assert tr.cpu.tolist() == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 0.0])


@pytest.mark.parametrize("text, line, words", [
    ("10\n2O\n30\n", 2, "not a number"),
    ("10\n-3\n", 2, "negative"),
    ("10\n\n30\n", 2, "blank"),
    ("10\n20\nnan\n", 3, "finite"),
])
def test_planetlab_bad_lines_name_file_and_line(tmp_path, text, line, words):
    p = tmp_path / "slice"
    p.write_text(text)
    with pytest.raises(InputError) as e:
        traces.read_planetlab(p)
    assert f"{p}:{line}" in one_line(e.value) and words in str(e.value)


def test_planetlab_empty_or_unreadable_file_is_an_error(tmp_path):
    p = tmp_path / "empty"
    p.write_text("")
    with pytest.raises(InputError, match="empty"):
        traces.read_planetlab(p)
    p.write_bytes(b"\xff\xfe12\n")
    with pytest.raises(InputError, match="cannot read"):
        traces.read_planetlab(p)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 100), min_size=1, max_size=50), st.integers(1, 16))
def test_planetlab_round_trips_any_valid_file(tmp_path_factory, values, cores):
    p = tmp_path_factory.mktemp("pl") / "slice"
    p.write_text("".join(f"{v}\n" for v in values))
    tr = traces.read_planetlab(p, cores)
    assert np.allclose(tr.cpu, np.array(values) / 100 * cores)


@settings(max_examples=80, deadline=None)
@given(st.text(alphabet="0123456789.-e \t;x\n", max_size=40))
def test_any_garbage_is_an_input_error_or_a_valid_trace(tmp_path_factory, text):
    p = tmp_path_factory.mktemp("pl") / "slice"
    p.write_text(text)
    try:
        tr = traces.read_planetlab(p)
    except InputError as e:
        one_line(e)
    else:
        assert (tr.cpu >= 0).all() and np.isfinite(tr.cpu).all()


# --- windows and footprints ------------------------------------------------------------

def test_window_and_footprint_statistics():
    tr = traces.read_bitbrains(FIX / "bitbrains" / "vm-a.csv")
    w = traces.window(tr, 1, 3)
    assert w.cpu.tolist() == pytest.approx([1.0, 2.0, 4.0])
    assert traces.footprint(w, "max") == 2 * GIB
    assert traces.footprint(w, "mean") == pytest.approx((2 + 1 + 0.5) / 3 * GIB, rel=1e-9)
    with pytest.raises(InputError, match="past the end"):
        traces.window(tr, 8, None)
    with pytest.raises(InputError, match="no memory"):
        traces.footprint(traces.read_planetlab(FIX / "planetlab" / "slice-a"), "max")


# --- the [[traces]] scenario table -----------------------------------------------------

SCENARIO = """
name = "t"
duration = "40s"
traces_dir = "{dir}"
[host]
nodes = 2
cores_per_node = 4
memory_per_node = "8GiB"
{extra}
"""


def load(tmp_path: Path, tables: str, trace_dir: Path = FIX) -> scenarios.Scenario:
    p = tmp_path / "s.toml"
    p.write_text(SCENARIO.format(dir=trace_dir, extra=tables))
    return scenarios.load(str(p))


def test_trace_clients_take_cores_memory_and_compressed_demand(tmp_path):
    sc = load(tmp_path, """
[[traces]]
format = "bitbrains"
files = "bitbrains/*.csv"
name = "bb-{stem}"
step = "5s"
offset = 1
memory_stat = "max"
mem_intensity = 0.7
start_every = "1s"
""")
    a, b = sc.clients
    assert (a.client.id, b.client.id) == ("bb-vm-a", "bb-vm-b")
    assert (a.client.vcpus, b.client.vcpus) == (4, 2)
    # 40 s at 5 s per step: 8 steps from offset 1 -> vm-a's steps 1..7; max memory 2 GiB.
    assert a.client.mem_bytes == 2 * GIB and a.mem_intensity == 0.7
    assert a.curve.values == pytest.approx((1.0, 2.0, 4.0, 4.0, 4.0, 0.2, 0.0))
    assert (a.start, b.start) == (0.0, 1.0)
    table = DemandTable(2, np.random.default_rng(0))
    table.set(0, a.curve)
    # One trace step per 5 simulated seconds: t = 12 s is step 2 of the window.
    assert table.value(12.0, 0.1)[0] == pytest.approx(4.0)


def test_planetlab_clients_get_the_default_or_given_memory(tmp_path):
    sc = load(tmp_path, """
[[traces]]
format = "planetlab"
files = ["planetlab/slice-a", "planetlab/slice-b"]
vcpus = 2
""")
    assert [c.client.mem_bytes for c in sc.clients] == [traces.DEFAULT_PLANETLAB_MEMORY] * 2
    assert [c.client.vcpus for c in sc.clients] == [2, 2]
    sc = load(tmp_path, """
[[traces]]
format = "planetlab"
files = "planetlab/slice-*"
count = 2
memory = "512MiB"
""")
    assert [c.client.id for c in sc.clients] == ["slice-a", "slice-b"]
    assert sc.clients[0].client.mem_bytes == 512 * MIB


@pytest.mark.parametrize("tables, words", [
    ('[[traces]]\nformat = "csv"\nfiles = "x"', "format"),
    ('[[traces]]\nformat = "planetlab"\nfiles = "nothing-*"', "matches no file"),
    ('[[traces]]\nformat = "planetlab"\nfiles = "planetlab/*"\ncount = 9', "only 3"),
    ('[[traces]]\nformat = "planetlab"\nfiles = "planetlab/*"\nmemory_stat = "max"',
     "bitbrains traces only"),
    ('[[traces]]\nformat = "bitbrains"\nfiles = "bitbrains/*"\nvcpus = 2', "planetlab traces only"),
    ('[[traces]]\nformat = "planetlab"\nfiles = "planetlab/*"\nspeed = 2', "unknown field"),
    ('[[traces]]\nformat = "planetlab"\nfiles = "planetlab/*"\nname = "same"', "duplicate"),
    ('[[traces]]\nformat = "planetlab"\nfiles = "planetlab/*"\noffset = 99', "past the end"),
])
def test_bad_trace_tables_are_one_line_errors(tmp_path, tables, words):
    with pytest.raises(InputError) as e:
        load(tmp_path, tables)
    assert words in one_line(e.value)


def test_trace_names_must_not_clash_with_other_clients(tmp_path):
    with pytest.raises(InputError, match="duplicate"):
        load(tmp_path, '[[clients]]\nname = "slice-a"\n[[traces]]\nformat = "planetlab"\n'
                       'files = "planetlab/slice-a"')


def test_traces_dir_comes_from_the_scenario_then_the_environment(tmp_path, monkeypatch):
    copy = tmp_path / "elsewhere"
    shutil.copytree(FIX, copy)
    (copy / "planetlab" / "slice-a").write_text("50\n")
    table = '[[traces]]\nformat = "planetlab"\nfiles = "planetlab/slice-a"'
    # A relative traces_dir is relative to the scenario file.
    sc = load(tmp_path, table, Path("elsewhere"))
    assert sc.clients[0].curve.values == (0.5,)
    monkeypatch.setenv(traces.ENV_TRACES_DIR, str(copy))
    assert traces.traces_dir() == copy
    p = tmp_path / "no-dir.toml"
    p.write_text(SCENARIO.format(dir="", extra=table).replace('traces_dir = ""\n', ""))
    assert scenarios.load(str(p)).clients[0].curve.values == (0.5,)
    monkeypatch.setenv(traces.ENV_TRACES_DIR, str(tmp_path / "missing"))
    with pytest.raises(InputError, match="no such directory"):
        scenarios.load(str(p))


# --- the real traces (skipped where ../shared/traces is absent) ---------------------------

@needs_shared
@pytest.mark.parametrize("name, clients, nodes", [("bitbrains", 16, 2), ("planetlab", 100, 4)])
def test_builtin_trace_scenarios_load_the_shared_data(name, clients, nodes):
    sc = scenarios.load(name)
    assert len(sc.clients) == clients and sc.host.topology.n == nodes and sc.expect
    steps = sc.duration / sc.clients[0].curve.step
    for c in sc.clients:
        assert len(c.curve.values) == steps and min(c.curve.values) >= 0
        assert c.client.mem_bytes > 0


@needs_shared
def test_every_shared_bitbrains_file_reads():
    for f in sorted((SHARED / "bitbrains-rnd-2013-7").glob("*.csv")):
        tr = traces.read_bitbrains(f)
        assert tr.step == 300.0 and len(tr) > 8000
        assert (tr.cpu <= 1.1 * tr.cores).all()


# --- real time ---------------------------------------------------------------------------

def test_real_time_plays_each_sample_for_its_own_step(tmp_path):
    sc = load(tmp_path, """
[[traces]]
format = "bitbrains"
files = "bitbrains/*.csv"
step = "5s"
start_every = "1s"
""")
    k = traces.compression(sc)
    assert k == sc.clients[0].curve.real_step / 5.0 > 1
    rt = traces.real_time(sc)
    a, b = rt.clients
    assert rt.duration == 40 * k and a.curve.step == a.curve.real_step
    assert (a.start, b.start) == (0.0, k)
    assert a.curve.values == sc.clients[0].curve.values
    # the same demand at the same trace step, k times later
    for t in (12.0, 27.0):
        x, y = DemandTable(1, np.random.default_rng(0)), DemandTable(1, np.random.default_rng(0))
        x.set(0, sc.clients[0].curve)
        y.set(0, a.curve)
        assert x.value(t, 0.1)[0] == y.value(t * k, 0.1)[0]
    # a scenario without traces is already in real time
    assert traces.real_time(scenarios.load("shift")) is not None
    assert traces.compression(scenarios.load("shift")) == 1.0


def test_traces_at_different_rates_cannot_be_played_in_real_time(tmp_path):
    sc = load(tmp_path, """
[[traces]]
format = "planetlab"
files = "planetlab/slice-a"
step = "5s"
[[traces]]
format = "planetlab"
files = "planetlab/slice-b"
step = "10s"
""")
    with pytest.raises(InputError, match="different rates"):
        traces.real_time(sc)


def test_simulate_and_compare_take_real_time(tmp_path):
    import json
    import subprocess
    import sys
    p = tmp_path / "s.toml"
    p.write_text(SCENARIO.format(dir=FIX, extra='[[traces]]\nformat = "planetlab"\n'
                                 'files = "planetlab/slice-a"\nstep = "5s"\n'))
    for cmd in (["simulate", "--no-plots", "-q"], ["compare", "--policies", "static",
                                                   "--no-plots", "--jobs", "1"]):
        out = tmp_path / cmd[0]
        proc = subprocess.run([sys.executable, "-m", "homenode", *cmd, str(p), "--real-time",
                               "--out", str(out)], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        doc = json.loads((out / ("summary.json" if cmd[0] == "simulate" else
                                 "compare.json")).read_text())
        assert doc["duration_s"] == 40 * 60      # 8 samples of 300 s, not of 5 s
