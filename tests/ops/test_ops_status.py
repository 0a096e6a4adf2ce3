"""The status model against the run's own recorder and the snapshots it was fed."""

from __future__ import annotations

import itertools
import json
import threading

import numpy as np
import pytest

from homenode import loop
from homenode.model import (
    Client,
    Considered,
    Decision,
    MigratePages,
    Reason,
    SetHome,
    Snapshot,
    Topology,
)
from homenode.ops import status as status_mod
from homenode.ops.status import StatusRecorder, TimedHost
from homenode.policy import make_policy
from homenode.sim import scenario as scenarios
from homenode.sim.host import SimClock, SimHost
from homenode.units import GIB, pages_to_mib


def _snap(t: float, topo: Topology, rows: list[tuple[str, int, list[int]]]) -> Snapshot:
    """rows: (id, home, pages per node)."""
    clients = tuple(Client(cid, vcpus=2, mem_bytes=sum(p) * 4096) for cid, _, p in rows)
    pages = np.array([p for _, _, p in rows], np.int64).reshape(len(rows), topo.n)
    return Snapshot(t, topo, clients, np.array([h for _, h, _ in rows], np.int64),
                    np.zeros(len(rows)), np.ones(len(rows)), np.ones(len(rows)), pages,
                    topo.mem_pages - pages.sum(axis=0))


def test_status_matches_the_run_recorder_and_the_last_snapshot(shift_state):
    doc = shift_state.status.status()
    run = shift_state.run
    snap = shift_state.host.snapshot()            # the loop ended on this instant
    json.dumps(doc, allow_nan=False)              # the API can always serve it
    assert doc["time"] == pytest.approx(snap.time)
    assert doc["ticks"] == len(run.samples)
    assert doc["home_changes_by_reason"] == dict(run.by_reason)
    assert sum(doc["home_changes_by_reason"].values()) > 0, "the scenario moves clients"
    assert doc["pages_migrated"] == run.pages_requested > 0
    last = run.samples[-1]
    rows = {c["id"]: c for c in doc["clients"]}
    assert list(rows) == list(last.ids)
    for k, cid in enumerate(last.ids):
        c = rows[cid]
        assert c["home"] == int(last.home[k])
        assert c["nmig"] == int(last.nmig[k]) == len(run.home_changes.get(cid, []))
        assert c["locality"] == pytest.approx(last.locality[k], abs=1e-4)
        assert c["local_mib"] == pytest.approx(pages_to_mib(last.local[k]), abs=0.05)
        assert c["local_mib"] + c["remote_mib"] == pytest.approx(
            pages_to_mib(last.total[k]), abs=0.1)
        assert c["cpu_received"] <= c["cpu_demand"] + 1e-4
    for n, node in enumerate(doc["nodes"]):
        assert node["load"] == pytest.approx(last.loads[n], abs=1e-4)
        assert node["free_mib"] == pytest.approx(pages_to_mib(last.free[n]), abs=0.05)
        assert node["clients"] == int((last.home == n).sum())
    assert doc["topology"]["distance"] == snap.topology.distance.tolist()


def test_every_sampled_tick_is_timed(shift_state):
    buckets, count, total = shift_state.status.tick_histogram()
    assert count == shift_state.status.ticks
    assert buckets[-1] == (float("inf"), count)
    assert all(a[1] <= b[1] for a, b in itertools.pairwise(buckets))
    assert total > 0


def test_explain_keeps_refused_alternatives(shift_state):
    refused = {c["client"] for d in shift_state.run.decisions for c in d["considered"]
               if c["verdict"] not in ("taken", "ok")}
    assert refused, "the scenario has refused moves"
    cid = sorted(refused)[0]
    doc = shift_state.status.explain(cid)
    verdicts = {c["verdict"] for r in doc["decisions"] for c in r["considered"]}
    assert verdicts - {"taken", "ok"}
    assert doc["settings"]["mig_threshold"] == pytest.approx(0.02)
    assert shift_state.status.explain("no-such-client") is None


def test_actions_and_decisions_are_bounded(monkeypatch):
    monkeypatch.setattr(status_mod, "DECISIONS_PER_CLIENT", 4)
    topo = Topology.uniform(2, 4, 4 * GIB)
    rec = StatusRecorder(topo, keep_actions=3)
    snap = _snap(0.0, topo, [("a", 0, [10, 0])])
    for t in range(10):
        snap.time = float(t)
        d = Decision([SetHome("a", t % 2, 1 - t % 2, Reason.BALANCE, 1.0, f"move {t}"),
                      MigratePages("a", t % 2, 1 - t % 2, 5)],
                     [Considered("a", t % 2, 1 - t % 2, Reason.BALANCE, 1.0, "taken")])
        rec.decision(snap, d, [])
    rec.sample(snap)
    doc = rec.status()
    assert [a["detail"] for a in doc["actions"]] == ["move 7", "move 8", "move 9"]
    assert doc["home_changes_by_reason"] == {"balance": 10}
    assert doc["pages_migrated"] == 50
    assert doc["clients"][0]["nmig"] == 10
    ex = rec.explain("a")
    assert [r["time"] for r in ex["decisions"]] == [6.0, 7.0, 8.0, 9.0]
    assert ex["pages"] == [{"src": 0, "dst": 1, "pages": 25}, {"src": 1, "dst": 0, "pages": 25}]


def test_refused_actions_are_listed_but_not_counted():
    topo = Topology.uniform(2, 4, 4 * GIB)
    rec = StatusRecorder(topo)
    snap = _snap(5.0, topo, [("a", 0, [10, 0])])

    class Refused:
        ok = False

    rec.decision(snap, Decision([SetHome("a", 0, 1, Reason.BALANCE, 2.0)]), [Refused()])
    rec.sample(snap)
    doc = rec.status()
    assert doc["actions"][0]["ok"] is False
    assert doc["home_changes_by_reason"] == {}
    assert doc["clients"][0]["nmig"] == 0


def test_departed_clients_keep_a_bounded_history(monkeypatch):
    monkeypatch.setattr(status_mod, "GONE_KEPT", 1)
    topo = Topology.uniform(2, 4, 4 * GIB)
    rec = StatusRecorder(topo)
    snap = _snap(0.0, topo, [("a", 0, [1, 0]), ("b", 1, [0, 1]), ("c", 0, [1, 0])])
    rec.decision(snap, Decision([SetHome(x, -1, 0, Reason.INITIAL) for x in "abc"]), [])
    rec.sample(snap)
    rec.sample(_snap(1.0, topo, [("b", 1, [0, 1])]))      # a and c leave; c left last
    assert [c["id"] for c in rec.status()["clients"]] == ["b"]
    assert rec.known_clients() == ["b", "c"]
    assert rec.client("a") is None and rec.explain("a") is None
    assert rec.explain("c")["current"] is None and rec.explain("c")["decisions"]


def test_an_empty_host_has_nodes_and_no_clients():
    topo = Topology.uniform(3, 4, 4 * GIB)
    rec = StatusRecorder()
    assert rec.status()["nodes"] == [] and rec.status()["topology"] is None
    rec.sample(Snapshot.empty(0.0, topo))
    doc = rec.status()
    assert [n["id"] for n in doc["nodes"]] == [0, 1, 2]
    assert doc["clients"] == [] and doc["imbalance"] == 0.0
    assert doc["topology"]["nodes"][2]["mem_mib"] == 4096.0


def test_status_can_be_read_while_the_loop_runs():
    sc = scenarios.load("burst")
    host = SimHost(sc, sc.seed)
    rec = StatusRecorder(sc.host.topology)
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                json.dumps(rec.status(), allow_nan=False)
        except BaseException as e:   # collected and re-raised in the test thread
            errors.append(e)

    th = threading.Thread(target=reader)
    th.start()
    try:
        loop.run(TimedHost(host, rec), make_policy("esxi"), SimClock(host), duration=30.0,
                 interval=1.0, recorder=rec)
    finally:
        stop.set()
        th.join()
    assert not errors
    assert len(rec.status()["clients"]) == 16


def test_pages_the_host_really_moved_are_believed():
    """Linux's results carry ``moved``; a dry run moves nothing."""
    topo = Topology.uniform(2, 4, 4 * GIB)
    rec = StatusRecorder(topo)
    snap = _snap(1.0, topo, [("a", 1, [100, 0])])

    class Moved:
        ok = True

        def __init__(self, moved: int):
            self.moved = moved

    rec.decision(snap, Decision([MigratePages("a", 0, 1, 64), MigratePages("a", 0, 1, 64)]),
                 [Moved(40), Moved(0)])
    rec.sample(snap)
    doc = rec.status()
    assert doc["pages_migrated"] == 40 and doc["clients"][0]["pages_migrated"] == 40
    assert [a["moved"] for a in doc["page_actions"]] == [40, 0]
    assert rec.explain("a")["pages"] == [{"src": 0, "dst": 1, "pages": 40}]
