"""`homenode top`: the screen layout, and the real thing in a tmux terminal."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from ops_helpers import homenode_argv
from rich.console import Console

from homenode.errors import HomenodeError
from homenode.model import Client, Snapshot, Topology
from homenode.ops.api import StatusClient
from homenode.ops.status import StatusRecorder
from homenode.ops.top import SORT_KEYS, View, render
from homenode.units import GIB

WAIT_S = 60.0      # generous: the machine is shared; nothing here is timed


def screen(doc: dict, view: View, width: int = 80, height: int = 24) -> list[str]:
    con = Console(width=width, height=height, record=True, force_terminal=True,
                  color_system=None, file=open(os.devnull, "w"))  # noqa: SIM115
    con.print(render(doc, view, width, height))
    return con.export_text().rstrip("\n").split("\n")


def synthetic(nodes: int, clients: int) -> dict:
    topo = Topology.uniform(nodes, 8, 16 * GIB)
    cl = tuple(Client(f"vm{i:03d}", vcpus=2, mem_bytes=GIB) for i in range(clients))
    pages = np.zeros((clients, nodes), np.int64)
    home = np.arange(clients) % nodes
    pages[np.arange(clients), home] = 200_000
    pages[np.arange(clients), (home + 1) % nodes] = np.arange(clients) * 1000
    rec = StatusRecorder(topo, source="daemon", policy="esxi")
    rec.sample(Snapshot(10.0, topo, cl, home, np.zeros(clients), np.full(clients, 1.5),
                        np.full(clients, 1.25), pages, topo.mem_pages - pages.sum(axis=0)))
    return rec.status()


def test_screen_fits_80x24_and_shows_the_esxtop_columns(shift_state):
    doc = shift_state.status.status()
    lines = screen(doc, View())
    assert len(lines) <= 24 and max(len(x) for x in lines) <= 80
    head = next(x for x in lines if "NHN" in x)
    for col in ("NAME", "NHN", "NMIG", "NLMEM", "NRMEM", "N%L", "DEM", "CPU"):
        assert col in head
    assert lines[1].startswith("N0 ") and lines[2].startswith("N1 ")
    assert "cpu" in lines[1] and "free" in lines[1] and lines[1].rstrip().endswith("G")
    assert "last home changes" in lines
    assert "[15/16]" in lines[-1]      # 15 of the 16 clients fit; the footer says so


@pytest.mark.parametrize(("nodes", "per_line"), [(8, 1), (20, 2)])
def test_many_nodes_still_leave_room_for_clients(nodes, per_line):
    lines = screen(synthetic(nodes, 40), View())
    assert len(lines) <= 24 and max(len(x) for x in lines) <= 80
    node_lines = [x for x in lines if x.startswith("N") and " cpu " in x]
    assert len(node_lines) == -(-nodes // per_line)
    assert sum(x.count(" cpu ") for x in node_lines) == nodes
    rows = [x for x in lines if x.startswith("vm")]
    assert len(rows) >= 5


def test_sort_keys_order_the_rows():
    doc = synthetic(2, 12)
    view = View()
    rows = [x.split()[0] for x in screen(doc, view, height=40) if x.startswith("vm")]
    # Default: N%L ascending, worst first; remote memory grows with the index.
    assert rows == [f"vm{i:03d}" for i in range(11, -1, -1)]
    assert view.press("n")
    rows = [x.split()[0] for x in screen(doc, view, height=40) if x.startswith("vm")]
    assert rows == sorted(rows)
    assert view.press("n") and view.reverse       # the same key again reverses
    rows = [x.split()[0] for x in screen(doc, view, height=40) if x.startswith("vm")]
    assert rows == sorted(rows, reverse=True)
    assert not view.press("q")
    assert set(SORT_KEYS) == {"n", "h", "m", "l", "r", "c", "d"}


def test_a_lost_api_keeps_the_last_screen_and_says_so(shift_state):
    doc = shift_state.status.status()
    view = View(error="[/x.sock: nobody is serving the status API there]")
    lines = screen(doc, view)
    assert "DISCONNECTED" in lines[0]
    assert any(x.startswith("vm") for x in lines)


# --- the real thing: `homenode simulate --live` watched by `homenode top` in tmux ---

def _wait(what: str, check, timeout: float = WAIT_S):
    end = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


class Tmux:
    def __init__(self, name: str):
        self.base = ["tmux", "-L", name, "-f", "/dev/null"]

    def __call__(self, *args: str) -> str:
        return subprocess.run([*self.base, *args], check=True, capture_output=True,
                              text=True, timeout=30).stdout

    def screen(self) -> list[str]:
        return self("capture-pane", "-p", "-t", "top").rstrip("\n").split("\n")

    def kill(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, timeout=30)


@pytest.fixture
def live_sim(tmp_path):
    sock = tmp_path / "s" / "status.sock"
    proc = subprocess.Popen(
        [*homenode_argv(), "simulate", "shift", "--live", "--speed", "5", "--duration", "400",
         "--socket", str(sock), "--out", str(tmp_path / "out"), "--no-plots", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def answers() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"simulate --live exited: {proc.communicate()}")
        try:
            with StatusClient(sock) as c:
                return c.request("status")["ticks"] > 0
        except HomenodeError:
            return False

    try:
        _wait("the live simulation's API", answers)
        yield proc, sock
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed "
                    "(Debian package tmux)")
def test_top_in_a_real_terminal_watches_a_live_simulation(live_sim, tmp_path):
    proc, sock = live_sim
    tmux = Tmux(f"homenode-test-{os.getpid()}")
    status_file = tmp_path / "top-exit"
    top = " ".join(shlex.quote(a) for a in [*homenode_argv(), "top", "--socket", str(sock),
                                              "--interval", "0.3"])
    cmd = f"{top}; echo $? > {shlex.quote(str(status_file))}"
    try:
        tmux("new-session", "-d", "-s", "top", "-x", "80", "-y", "24", "-e", "TERM=xterm-256color",
             cmd)
        lines = _wait("the top screen", lambda: (s := tmux.screen()) and
                      any("NHN" in x for x in s) and any(x.startswith("vm") for x in s) and s)
        assert len(lines) <= 24 and max(len(x) for x in lines) <= 80
        assert lines[0].startswith("homenode top") and "shift" in lines[0]
        head = next(x for x in lines if "NHN" in x)
        assert all(c in head for c in ("NMIG", "NLMEM", "NRMEM", "N%L", "CPU"))
        assert any(x.startswith("N0 ") and " cpu " in x and " free " in x for x in lines)
        assert any(x.startswith("N1 ") for x in lines)
        assert "last home changes" in lines

        tmux("send-keys", "-t", "top", "n")
        lines = _wait("sort by name", lambda: (s := tmux.screen()) and
                      any("NAME↓" in x for x in s) and s)
        rows = [x.split()[0] for x in lines if x.startswith("vm")]
        assert rows == sorted(rows) and rows[0] == "vm00"
        tmux("send-keys", "-t", "top", "n")
        lines = _wait("reverse sort", lambda: (s := tmux.screen()) and
                      any("NAME↑" in x for x in s) and s)
        assert next(x.split()[0] for x in lines if x.startswith("vm")) == "vm15"

        proc.send_signal(signal.SIGINT)          # the simulation stops serving
        assert proc.wait(timeout=WAIT_S) == 130
        assert not Path(sock).exists()
        lines = _wait("the disconnected header",
                      lambda: (s := tmux.screen()) and "DISCONNECTED" in s[0] and s)
        assert any(x.startswith("vm") for x in lines)     # the last screen stays up

        tmux("send-keys", "-t", "top", "q")
        _wait("top to exit", lambda: status_file.exists() and status_file.read_text())
        assert status_file.read_text().strip() == "0"
    finally:
        tmux.kill()


def test_top_once_prints_one_screen_and_a_dead_api_is_one_line(shift_state, tmp_path, capsys):
    from homenode.cli import main
    from homenode.ops.api import serve_status
    with serve_status(shift_state.status, tmp_path / "s.sock") as server:
        main(["top", "--socket", str(server.path), "--once", "--sort", "n"])
    out = capsys.readouterr().out
    assert "NAME↓" in out and "vm00" in out and "N%L" in out
    with pytest.raises(SystemExit) as e:
        main(["top", "--socket", str(tmp_path / "gone.sock"), "--once"])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no status socket" in err


def test_the_v_key_shows_memory_per_node_like_numastat(shift_state):
    doc = shift_state.status.status()
    view = View()
    assert view.press("v") and view.per_node
    lines = screen(doc, view, width=100)
    head = next(x for x in lines if "NHN" in x)
    assert "N0MB" in head and "N1MB" in head and "NLMEM" not in head
    row = next(x for x in lines if x.startswith("vm00"))
    c = next(c for c in doc["clients"] if c["name"] == "vm00")
    assert [f"{m:.0f}" for m in c["mem_by_node_mib"]] == row.split()[3:5]
    view.press("v")
    assert "NLMEM" in next(x for x in screen(doc, view) if "NHN" in x)
