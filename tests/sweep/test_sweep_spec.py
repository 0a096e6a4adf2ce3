"""The sweep spec and its expansion into cases; bad specs are one line, exit 2, nothing
written."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sweep_support import DAY_SAMPLES, homenode, write_spec

from homenode.errors import InputError
from homenode.sweep import cases, grouping
from homenode.sweep import spec as specs
from homenode.units import GIB


def plan_of(path: Path) -> cases.Plan:
    return cases.expand(specs.load(str(path)))


def test_a_trace_set_expands_to_days_x_groups_x_shapes_x_policies_x_seeds_x_grid(
        tmp_path, traces):
    p = write_spec(tmp_path / "s.toml", traces, shapes='["small", "wide"]',
                   extra="seeds = 2\n[grid]\nrebalance_period = [2.0, 4.0]\n")
    plan = plan_of(p)
    groups = {(c.shape, c.group) for c in plan.cases}
    n_groups = {s: len({g for sh, g in groups if sh == s}) for s in ("small", "wide")}
    # 3 days, the groups of each shape, 2 policies, 2 seeds, 2 grid points.
    assert len(plan.cases) == 3 * sum(n_groups.values()) * 2 * 2 * 2
    assert len({c.key for c in plan.cases}) == len(plan.cases)
    c = plan.cases[0]
    assert f"offset = {c.day * DAY_SAMPLES}" in c.text
    assert {c.day for c in plan.cases} == {0, 1, 2}
    assert {c.grid for c in plan.cases} == {"rebalance_period=2.0", "rebalance_period=4.0"}


def test_the_key_follows_the_content(tmp_path, traces):
    p = write_spec(tmp_path / "s.toml", traces, days="days = [1]")
    before = {(c.label, c.policy): c.key for c in plan_of(p).cases}
    again = {(c.label, c.policy): c.key for c in plan_of(p).cases}
    assert before == again
    f = traces / "bb" / "1.csv"
    f.write_text(f.read_text().replace("\n1372", "\n1372", 1) + "\n")   # one byte more
    changed = {(c.label, c.policy): c.key for c in plan_of(p).cases}
    groups_with_1 = {c.label for c in plan_of(p).cases if "bb/1.csv" in c.text}
    for (label, pol), key in changed.items():
        assert (key != before[(label, pol)]) == (label in groups_with_1)


def test_scenario_sets_take_builtins_and_seeds(tmp_path, traces):
    p = write_spec(tmp_path / "s.toml", traces, days="days = [0]",
                   scenarios='[[scenarios]]\nnames = ["burst", "shift"]\nseeds = 3\n'
                             'policies = ["esxi"]\n')
    sc = [c for c in plan_of(p).cases if c.family == cases.FAMILY_SCENARIO]
    assert sorted((c.label, c.seed) for c in sc) == [
        (n, s) for n in ("burst", "shift") for s in (1, 2, 3)]
    synthetic = specs.load("train").scenario_sets[0]
    assert synthetic.names == (specs.SYNTHETIC,)


def test_builtin_specs_are_shipped():
    assert {"smoke", "train"} <= set(specs.builtin_specs())
    for name in ("smoke", "train"):
        s = specs.load(name)
        assert s.trace_sets and s.scenario_sets


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 8), st.integers(1, 40)), min_size=1, max_size=30),
       st.sampled_from([(8.0, 64), (24.0, 192), (32.0, 384)]))
def test_groups_hold_every_vm_once_and_fit_memory(vms, shape):
    cores, mem_gib = shape
    vm = [grouping.VM(f"v{i}", m, f * GIB) for i, (m, f) in enumerate(vms)]
    try:
        groups = grouping.plan(vm, cores, mem_gib * GIB, load=0.7, memory_share=0.9)
    except InputError as e:
        assert any(v.footprint > 0.9 * mem_gib * GIB for v in vm), e
        return
    names = [n for g in groups for n in g]
    assert sorted(names) == sorted(v.name for v in vm)
    fp = {v.name: v.footprint for v in vm}
    assert all(sum(fp[n] for n in g) <= 0.9 * mem_gib * GIB for g in groups)
    total = sum(v.mean_cores for v in vm)
    assert len(groups) >= min(max(1, round(total / (0.7 * cores))), len(vm))


# --- bad input: one line naming field and value, exit 2, nothing written ----------------

BAD = {
    "unknown field": ({"extra": "colour = 'red'"}, "traces[0].colour"),
    "unknown policy": ({"policies": '["esxi", "nope"]'}, "policies = 'nope'"),
    "unknown shape": ({"shapes": '["huge"]'}, "traces[0].shapes = 'huge'"),
    "bad grid setting": ({"extra": "[grid]\nno_such_setting = [1]"}, "grid.no_such_setting = 1"),
    "day past the end": ({"days": "days = [7]"}, "traces[0].days = 7"),
    "footprints do not fit": ({"memory": "1GiB"}, "memory_per_node"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_specs_are_one_line_exit_2_nothing_written(tmp_path, traces, case):
    kw, needle = BAD[case]
    p = write_spec(tmp_path / "s.toml", traces, **kw)
    out = tmp_path / "out"
    rc, stdout, err = homenode("sweep", str(p), "--out", str(out), "--jobs", "1")
    assert rc == 2, (stdout, err)
    assert len(err.strip().splitlines()) == 1 and needle in err, err
    assert "Traceback" not in err
    assert not out.exists()


def test_missing_trace_files_are_named(tmp_path, traces):
    p = write_spec(tmp_path / "s.toml", traces)
    p.write_text(p.read_text().replace('files = "bb/*.csv"', 'files = ["bb/1.csv", "bb/9.csv"]'))
    out = tmp_path / "out"
    rc, _, err = homenode("sweep", str(p), "--out", str(out))
    assert rc == 2 and "traces[0].files = 'bb/9.csv': matches no file" in err, err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
    rc, _, err = homenode("sweep", str(p), "--out", str(out),
                          env={"HOMENODE_TRACES_DIR": str(tmp_path / "none")})
    assert rc == 2 and "matches no file" in err and not out.exists()


def test_an_unreachable_scheduler_is_one_line(tmp_path, traces):
    pytest.importorskip("distributed")
    p = write_spec(tmp_path / "s.toml", traces, days="days = [0]")
    out = tmp_path / "out"
    rc, _, err = homenode("sweep", str(p), "--out", str(out), "--dask", "tcp://127.0.0.1:9",
                          timeout=120)
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and "--dask = 'tcp://127.0.0.1:9'" in err, err
    assert not out.exists()


def test_an_existing_sweep_needs_resume(tmp_path, traces):
    p = write_spec(tmp_path / "s.toml", traces, days="days = [0]", policies='["static"]')
    out = tmp_path / "out"
    assert homenode("sweep", str(p), "--out", str(out), "--jobs", "1")[0] == 0
    rc, _, err = homenode("sweep", str(p), "--out", str(out), "--jobs", "1")
    assert rc == 2 and "--resume" in err


def test_a_scenario_file_with_traces_carries_its_trace_hashes(tmp_path, traces):
    scen = tmp_path / "mine.toml"
    scen.write_text('name = "mine"\nduration = "30s"\n[host]\nnodes = 2\ncores_per_node = 4\n'
                    '[[traces]]\nformat = "bitbrains"\nfiles = "bb/*.csv"\nstep = "5s"\n')
    p = write_spec(tmp_path / "s.toml", traces, days="days = [0]",
                   scenarios=f'[[scenarios]]\nfiles = ["{scen.name}"]\npolicies = ["esxi"]\n')
    sc = [c for c in plan_of(p).cases if c.family == cases.FAMILY_SCENARIO]
    assert len(sc) == 1 and len(sc[0].traces) == 6
    assert {r for r, _ in sc[0].traces} == {f"bb/{k}.csv" for k in range(1, 7)}
    scen.write_text("traces_dir = 'x'\n" + scen.read_text())
    with pytest.raises(InputError, match="a sweep resolves trace files itself"):
        plan_of(p)


def test_the_docs_example_spec_is_a_valid_spec(tmp_path):
    doc = (Path(__file__).resolve().parents[2] / "docs" / "sweep.md").read_text()
    example = doc.split("```toml\n")[1].split("```")[0]
    (tmp_path / "my-scenario.toml").write_text('name = "my-scenario"\n')
    s = specs.parse(example, str(tmp_path / "example.toml"), tmp_path)
    assert [t.name for t in s.trace_sets] == ["bb2013-9"]
    assert s.trace_sets[0].days == (0, 3) and s.trace_sets[0].policies == ("esxi", "static")
    assert dict(s.grid) == {"mig_threshold": (0.02, 0.05), "rebalance_period": (2.0, 4.0)}
