"""Running a sweep: the store, resume, failing cases, the table and the report."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sweep_support import homenode, write_spec

from homenode.sweep import cases, driver, executors, table
from homenode.sweep import spec as specs
from homenode.sweep.store import Store


def plan_of(path: Path) -> cases.Plan:
    return cases.expand(specs.load(str(path)))


def run(plan: cases.Plan, out: Path, jobs: int = 1, resume: bool = False) -> driver.Outcome:
    ex = executors.Serial(plan.root) if jobs == 1 else executors.LocalPool(plan.root, jobs)
    return driver.run(plan, out, ex, resume=resume)


def test_every_case_is_one_row_with_every_summary_key(tmp_path, traces):
    p = write_spec(tmp_path / "s.toml", traces, days="days = [0, 2]",
                   scenarios='[[scenarios]]\nnames = ["burst"]\npolicies = ["esxi"]\n')
    plan = plan_of(p)
    res = run(plan, tmp_path / "out")
    assert res.executed == res.total == len(plan.cases) and res.failed == 0
    rows = list(csv.DictReader((tmp_path / "out" / table.RESULTS_CSV).open()))
    assert [r["key"] for r in rows] == sorted(c.key for c in plan.cases)
    rec = Store(tmp_path / "out").get(plan.cases[0].key)
    summary_keys = set(rec["summary"])
    assert summary_keys and summary_keys <= set(rows[0])
    assert "sim_speed" not in rows[0] and "wall_s" not in rows[0]
    assert all(r["status"] == "ok" for r in rows)
    pt = pq.read_table(tmp_path / "out" / table.RESULTS_PARQUET)
    assert pt.column_names == list(rows[0])
    assert pt.num_rows == len(rows)
    assert pt.column("key").to_pylist() == [r["key"] for r in rows]
    thr = pt.column("throughput_vs_ideal").to_pylist()
    assert thr == [float(r["throughput_vs_ideal"]) for r in rows]
    timings = list(csv.DictReader((tmp_path / "out" / table.TIMINGS_CSV).open()))
    assert len(timings) == len(rows) and all(float(t["wall_s"]) > 0 for t in timings)


def test_the_pool_gives_the_same_bytes_as_one_process(tmp_path, traces):
    p = write_spec(tmp_path / "s.toml", traces, days="days = [1]",
                   policies='["esxi", "static", "numad"]')
    plan = plan_of(p)
    run(plan, tmp_path / "one")
    run(plan, tmp_path / "pool", jobs=2)
    for name in (table.RESULTS_CSV, table.RESULTS_PARQUET):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "pool" / name).read_bytes()


def test_resume_runs_only_what_is_missing(tmp_path, traces):
    p = write_spec(tmp_path / "s.toml", traces)
    plan = plan_of(p)
    out = tmp_path / "out"
    first = run(plan, out)
    full = (out / table.RESULTS_CSV).read_bytes()
    store = Store(out)
    gone = [c.key for c in plan.cases[::3]]
    for k in gone:
        store.path(k).unlink()
    again = run(plan, out, resume=True)
    assert again.reused == first.total - len(gone) and again.executed == len(gone)
    assert (out / table.RESULTS_CSV).read_bytes() == full
    assert run(plan, out, resume=True).executed == 0


def test_a_failing_case_is_recorded_and_the_sweep_goes_on(tmp_path, traces):
    p = write_spec(tmp_path / "s.toml", traces, days="days = [0]")
    plan = plan_of(p)
    # The trace changes after the sweep was planned: its cases must not run on new bytes.
    victim = traces / "bb" / "1.csv"
    victim.write_text(victim.read_text() + "\n")
    res = run(plan, tmp_path / "out")
    bad = [c for c in plan.cases if "bb/1.csv" in c.text]
    assert res.failed == len(bad) > 0 and res.executed == len(plan.cases)
    rows = {r["key"]: r for r in csv.DictReader((tmp_path / "out" / table.RESULTS_CSV).open())}
    for c in plan.cases:
        r = rows[c.key]
        assert (r["status"] == "error") == (c in bad)
        if c in bad:
            assert "bb/1.csv changed since the sweep was expanded" in r["error"]
    html = (tmp_path / "out" / "report.html").read_text()
    assert f"Failed cases: {len(bad)}" in html
    # Resume tries failed cases again (they are not "finished").
    victim.write_text(victim.read_text()[:-1])
    again = run(plan, tmp_path / "out", resume=True)
    assert again.executed == len(bad) and again.failed == 0


def test_table_reprints_the_win_loss_table(tmp_path, traces):
    p = write_spec(tmp_path / "s.toml", traces, days="days = [0, 1]")
    out = tmp_path / "out"
    rc, stdout, err = homenode("sweep", str(p), "--out", str(out), "--jobs", "2")
    assert rc == 0, err
    rc, again, err = homenode("sweep", "--table", str(out))
    assert rc == 0, err
    assert "esxi" in again and "static" in again and "wins" in again
    head = stdout[stdout.index("tiny: wins"):]
    assert again.strip().splitlines()[0] in head


def test_report_is_self_contained_with_every_section(tmp_path, traces):
    p = write_spec(tmp_path / "s.toml", traces, shapes='["small", "wide"]',
                   policies='["esxi", "static", "numad"]')
    out = tmp_path / "out"
    run(plan_of(p), out)
    html = (out / "report.html").read_text()
    for needle in ("Wins, ties and losses", "Distributions over the cases",
                   "Home changes per client per 10 min", "Memory copied",
                   "esxi ÷ best peer", "bb day 02", "How loaded the hosts were", "<svg"):
        assert needle in html, needle
    assert "throughput_vs_bound" in html      # the fallback is said out loud
    assert "<script" not in html and "http://" not in html.replace(
        "http://www.w3.org/2000/svg", "")


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_then_resume_runs_only_the_rest(tmp_path, traces, jobs):
    # SIGINT to the driver alone (not its process group): the pool's workers must stop too.
    p = write_spec(tmp_path / "s.toml", traces, shapes='["small", "wide"]',
                   policies='["esxi", "static", "numad", "autonuma"]')
    total = len(plan_of(p).cases)
    out = tmp_path / "out"
    exe = Path(sys.executable).with_name("homenode")
    proc = subprocess.Popen([str(exe), "sweep", str(p), "--out", str(out), "--jobs", jobs],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while len(list((out / "cases").glob("*/*.json"))) < total // 2:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130
    done = len(list((out / "cases").glob("*/*.json")))
    assert total // 2 <= done < total
    rc, stdout, err = homenode("sweep", str(p), "--out", str(out), "--jobs", jobs, "--resume")
    assert rc == 0, err
    assert f"{total} cases: {done} already done, {total - done} run now, 0 failed" in stdout
    assert json.loads((out / "sweep.json").read_text())["cases"]


def test_remembered_reads_follow_the_file(traces):
    from homenode.sim import traces as tr

    f = traces / "bb" / "2.csv"
    try:
        tr.remember_reads()
        a = tr.read_trace(f, "bitbrains")
        assert tr.read_trace(f, "bitbrains") is a
        f.write_text(f.read_text().rsplit("\n", 2)[0] + "\n")     # one sample fewer
        b = tr.read_trace(f, "bitbrains")
        assert b is not a and len(b) == len(a) - 1
    finally:
        tr.remember_reads(False)
    assert tr.read_trace(f, "bitbrains") is not tr.read_trace(f, "bitbrains")
