"""`homenode compare`: policies side by side on identical inputs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from homenode import compare as cmp
from homenode.sim import scenario as scenarios
from homenode.simulation import simulate


def strip_speed(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "sim_speed"}


def test_compare_writes_json_with_each_policys_summary_and_a_png(tmp_path):
    sc = scenarios.load("shift")
    doc = cmp.run(sc, ["esxi", "static"], 1, out=tmp_path, duration=90, jobs=1)
    on_disk = json.loads((tmp_path / cmp.COMPARE_JSON).read_text())
    assert on_disk == json.loads(json.dumps(doc))
    assert doc["scenario"] == "shift" and doc["seeds"] == [sc.seed]
    assert set(doc["policies"]) == {"esxi", "static"}
    for name, entry in doc["policies"].items():
        alone = simulate(sc, name, duration=90).summary
        # One seed: the mean is that seed's summary, which is what simulate gives.
        assert strip_speed(entry["per_seed"][0]) == strip_speed(alone)
        for key in ("throughput_vs_ideal", "mean_locality", "p5_locality", "home_changes",
                    "gib_migrated", "convergence_max_s"):
            assert entry[key] == alone[key], key
    assert (tmp_path / cmp.COMPARE_PNG).stat().st_size > 10_000


def test_seeds_are_averaged_and_kept(tmp_path):
    doc = cmp.run(scenarios.load("churn"), ["static"], 2, duration=60, jobs=1)
    entry = doc["policies"]["static"]
    per = entry["per_seed"]
    assert [p["seed"] for p in per] == doc["seeds"] == entry["seeds"]
    assert entry["throughput_vs_ideal"] == pytest.approx(
        (per[0]["throughput_vs_ideal"] + per[1]["throughput_vs_ideal"]) / 2, abs=1e-4)


def test_average_is_none_when_any_seed_is_none():
    a = {"scenario": "s", "policy": "p", "seed": 1, "convergence_max_s": 4.0, "x": 1,
         "by": {"balance": 2}, "convergence_s": []}
    b = {**a, "seed": 2, "convergence_max_s": None, "x": 3, "by": {"locality": 4}}
    m = cmp.average([a, b])
    assert m["convergence_max_s"] is None and m["x"] == 2.0 and m["seeds"] == [1, 2]
    assert m["by"] == {"balance": 1.0, "locality": 2.0} and "convergence_s" not in m


def test_parallel_workers_give_the_same_numbers_as_one_process():
    sc = scenarios.load("shift")
    one = cmp.run(sc, ["esxi", "numad"], 1, duration=80, jobs=1, plots=False)
    two = cmp.run(sc, ["esxi", "numad"], 1, duration=80, jobs=2, plots=False)
    for p in ("esxi", "numad"):
        assert strip_speed(one["policies"][p]["per_seed"][0]) == \
            strip_speed(two["policies"][p]["per_seed"][0])


def test_optimal_entry_reports_its_solver_and_required_copying():
    doc = cmp.run(scenarios.load("shift"), ["optimal"], 1, duration=90, jobs=1)
    entry = doc["policies"]["optimal"]
    s = entry["solver"]
    assert s["solves"] > 0 and s["timeouts"] == 0 and s["max_gap"] is not None
    assert 0 < s["bound_vs_demand"] <= 1
    # At 60 s node 0 wants 20 of 16 cores: two 4 GiB VMs must move (15 + 9 <= 16 each).
    assert entry["required_gib"] == pytest.approx(8.0)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "homenode", "compare", *args],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args, words", [
    (["shift", "--policies", "esxi,nope"], "--policies = 'nope'"),
    (["shift", "--policies", "esxi,esxi"], "twice"),
    (["shift", "--seeds", "0"], "--seeds = 0"),
    (["shift", "--duration", "-5"], "--duration"),
    (["shift", "--jobs", "0"], "--jobs"),
    (["no-such-scenario"], "scenario"),
])
def test_cli_bad_input_is_one_line_and_exit_2(args, words, tmp_path):
    proc = run_cli(*args, "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_cli_prints_one_table_and_writes_the_files(tmp_path):
    out = tmp_path / "cmp"
    proc = run_cli("shift", "--policies", "esxi,static,optimal", "--duration", "70",
                   "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("thr/ideal") == 1
    for name in ("esxi", "static", "optimal"):
        assert name in proc.stdout
    assert "MIP solves" in proc.stdout and "Running HiGHS" not in proc.stdout
    doc = json.loads((out / cmp.COMPARE_JSON).read_text())
    assert list(doc["policies"]) == ["esxi", "static", "optimal"]
    assert (out / cmp.COMPARE_PNG).exists()
