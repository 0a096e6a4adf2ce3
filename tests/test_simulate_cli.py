"""`homenode simulate`: the summary says what the scenario is about and whether the run
did what it expects; --check fails on a miss; an output folder never mixes two runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from homenode import summarykeys

HOMENODE = [str(Path(sys.executable).with_name("homenode"))]


def _sim(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*HOMENODE, "simulate", *args], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, env={"COLUMNS": "100", "PATH": "/usr/bin"})


def test_the_summary_shows_the_scenario_metrics_and_each_verdict(tmp_path):
    r = _sim(tmp_path, "wide", "--out", "w", "--no-plots", "--check")
    assert r.returncode == 0, r.stderr
    assert "wide_max_distance_settled" in r.stdout and "SLIT" in r.stdout
    assert "[expect] of wide: 3 of 3 met" in r.stdout
    assert "ok   wide_max_distance_settled = " in r.stdout


def test_check_exits_1_on_a_missed_expectation_and_the_title_names_the_settings(tmp_path):
    r = _sim(tmp_path, "shift", "--duration", "70", "--out", "s", "--no-plots", "--check",
             "--profile", "esxi-default", "--set", "min_residence=33")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "shift / esxi / seed 1 / profile esxi-default / min_residence=33" in r.stdout
    assert "FAIL convergence_max_s" in r.stdout and "2 of 3 met" in r.stdout
    assert "the scenario's duration is 300 s" in r.stdout
    q = _sim(tmp_path, "shift", "--duration", "70", "--out", "s", "--no-plots", "--check",
             "-q")
    assert q.returncode == 1 and "FAIL convergence_max_s" in q.stderr
    assert _sim(tmp_path, "shift", "--duration", "70", "--out", "s", "--no-plots",
                "-q").returncode == 0                          # without --check: 0


def test_a_folder_never_mixes_two_runs(tmp_path):
    assert _sim(tmp_path, "shift", "--duration", "30", "--out", "D", "-q").returncode == 0
    assert (tmp_path / "D" / "report.html").exists()
    assert _sim(tmp_path, "burst", "--duration", "10", "--out", "D", "--no-plots",
                "-q").returncode == 0
    left = {p.name for p in (tmp_path / "D").iterdir()}
    assert not left & {"report.html", "locality.png", "load.png"}, left
    assert json.loads((tmp_path / "D" / "summary.json").read_text())["scenario"] == "burst"


def test_a_compare_folder_is_refused_before_running(tmp_path):
    (tmp_path / "C").mkdir()
    (tmp_path / "C" / "compare.json").write_text("{}")
    r = _sim(tmp_path, "burst", "--out", "C")
    assert r.returncode == 2 and "holds a comparison" in r.stderr
    assert {p.name for p in (tmp_path / "C").iterdir()} == {"compare.json"}


def test_every_summary_key_of_the_readme_has_a_unit_and_meaning():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme.split("`summary.json` keys:")[1].split("\n## ")[0]
    named = {k for line in table.splitlines() if line.startswith("| `")
             for k in line.split("|")[1].replace("`", "").replace(" ", "").split(",")}
    skip = {"scenario", "policy", "seed", "convergence_s", "home_changes_by_reason",
            "profile", "settings"}
    missing = sorted(named - skip - set(summarykeys.KEYS))
    assert not missing, missing


@pytest.mark.parametrize("key", summarykeys.CORE)
def test_core_keys_have_info(key):
    assert summarykeys.info(key) is not None


def test_make_run_ends_by_naming_the_report(tmp_path):
    root = Path(__file__).resolve().parents[1]
    venv = Path(sys.executable).parent.parent
    r = subprocess.run(["make", "--no-print-directory", "-f", str(root / "Makefile"),
                        f"VENV={venv}", "-o",
                        f"{venv}/.installed", "run"], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.rstrip().splitlines()[-1] == \
        "wrote homenode-out/  (open homenode-out/report.html)"
    assert (tmp_path / "homenode-out" / "report.html").is_file()
