"""The sweep on a real Dask cluster: a scheduler and two worker processes on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sweep_support import write_spec

from homenode.errors import HomenodeError
from homenode.sim.traces import traces_dir
from homenode.sweep import cases, driver, executors, table
from homenode.sweep import spec as specs
from homenode.sweep.store import Store

pytest.importorskip("distributed")
pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


class Cluster:
    """``dask scheduler`` and two ``dask worker`` processes (no nanny: killing a worker's
    pid kills that worker for good)."""

    def __init__(self, tmp: Path, workers: int = 2):
        self.file = tmp / "scheduler.json"
        self.procs: list[subprocess.Popen] = []
        self.scheduler = self._start(["scheduler", "--host", "127.0.0.1", "--port", "0",
                                      "--no-dashboard", "--scheduler-file", str(self.file)])
        end = time.monotonic() + 60
        while not self.file.exists():
            assert time.monotonic() < end, "the scheduler did not start"
            time.sleep(0.1)
        import json
        self.address = json.loads(self.file.read_text())["address"]
        self.workers = [self._start(["worker", self.address, "--nthreads", "1", "--no-nanny",
                                     "--no-dashboard", "--host", "127.0.0.1"])
                        for _ in range(workers)]
        from distributed import Client
        with Client(self.address, timeout=30) as c:
            c.wait_for_workers(workers, timeout=60)

    def _start(self, args: list[str]) -> subprocess.Popen:
        p = subprocess.Popen([str(BIN / "dask"), *args], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(p)
        return p

    def close(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    yield c
    c.close()


def local(plan: cases.Plan, out: Path) -> driver.Outcome:
    return driver.run(plan, out, executors.LocalPool(plan.root, 2))


@pytest.mark.skipif(not (traces_dir() / "bitbrains-rnd-2013-9").is_dir(),
                    reason=f"no shared traces in {traces_dir()}")
def test_smoke_on_dask_equals_the_local_pool(tmp_path, cluster):
    plan = cases.expand(specs.load("smoke"))
    local(plan, tmp_path / "local")
    ex = executors.Dask(cluster.address, plan.files)
    try:
        res = driver.run(plan, tmp_path / "dask", ex)
    finally:
        ex.close()
    assert res.executed == len(plan.cases) and res.failed == 0 and res.duplicates == 0
    for name in (table.RESULTS_CSV, table.RESULTS_PARQUET):
        assert (tmp_path / "dask" / name).read_bytes() == \
            (tmp_path / "local" / name).read_bytes(), name


def test_a_worker_killed_mid_sweep_loses_nothing_and_runs_nothing_twice(
        tmp_path, traces, cluster, monkeypatch):
    monkeypatch.setattr(executors, "DASK_WINDOW", 4)     # a few cases in flight at a time
    p = write_spec(tmp_path / "s.toml", traces, shapes='["small", "wide"]',
                   policies='["esxi", "static", "numad", "autonuma"]')
    plan = cases.expand(specs.load(str(p)))
    local(plan, tmp_path / "local")
    victim = cluster.workers[0]
    arrived: list[str] = []

    def progress(res: driver.Outcome, rec: dict | None) -> None:
        if rec is not None:
            arrived.append(rec["key"])
        if len(arrived) == len(plan.cases) // 3 and victim.poll() is None:
            os.kill(victim.pid, signal.SIGKILL)

    ex = executors.Dask(cluster.address, plan.files)
    try:
        res = driver.run(plan, tmp_path / "dask", ex, on_progress=progress)
    finally:
        ex.close()
    assert victim.wait(30) == -signal.SIGKILL      # it really died mid-sweep
    assert sorted(arrived) == sorted(c.key for c in plan.cases)   # each key exactly once
    assert res.executed == len(plan.cases) and res.duplicates == 0 and res.failed == 0
    store = Store(tmp_path / "dask")
    assert len(list((tmp_path / "dask" / "cases").glob("*/*.json"))) == len(plan.cases)
    assert all(store.get(c.key)["status"] == "ok" for c in plan.cases)
    assert (tmp_path / "dask" / table.RESULTS_CSV).read_bytes() == \
        (tmp_path / "local" / table.RESULTS_CSV).read_bytes()


def test_local_n_starts_its_own_cluster(tmp_path, traces):
    p = write_spec(tmp_path / "s.toml", traces, days="days = [0]")
    plan = cases.expand(specs.load(str(p)))
    ex = executors.Dask("local:2", plan.files)
    try:
        res = driver.run(plan, tmp_path / "d", ex)
    finally:
        ex.close()
    local(plan, tmp_path / "l")
    assert res.executed == len(plan.cases)
    assert (tmp_path / "d" / table.RESULTS_CSV).read_bytes() == \
        (tmp_path / "l" / table.RESULTS_CSV).read_bytes()


def test_a_lost_scheduler_stops_the_sweep_and_resume_finishes_it(tmp_path, traces, cluster):
    p = write_spec(tmp_path / "s.toml", traces, shapes='["small", "wide"]',
                   policies='["esxi", "static", "numad", "autonuma"]')
    plan = cases.expand(specs.load(str(p)))
    arrived: list[str] = []

    def progress(res: driver.Outcome, rec: dict | None) -> None:
        if rec is not None:
            arrived.append(rec["key"])
        if len(arrived) == len(plan.cases) // 3 and cluster.scheduler.poll() is None:
            os.killpg(cluster.scheduler.pid, signal.SIGKILL)

    ex = executors.Dask(cluster.address, plan.files)
    try:
        with pytest.raises(HomenodeError, match="run again with --resume"):
            driver.run(plan, tmp_path / "out", ex, on_progress=progress)
    finally:
        ex.close()
    stored = {c.key for c in plan.cases if Store(tmp_path / "out").get(c.key)}
    assert stored == set(arrived) and 0 < len(stored) < len(plan.cases)
    res = driver.run(plan, tmp_path / "out", executors.LocalPool(plan.root, 2), resume=True)
    assert res.reused == len(stored) and res.executed == len(plan.cases) - len(stored)
    local(plan, tmp_path / "local")
    assert (tmp_path / "out" / table.RESULTS_CSV).read_bytes() == \
        (tmp_path / "local" / table.RESULTS_CSV).read_bytes()
