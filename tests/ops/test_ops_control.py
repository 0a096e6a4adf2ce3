"""Runtime control of a real daemon: include/exclude a PID through the API, and SIGHUP
reloads the config's client rules (a dry run on this host: nothing is changed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ops_helpers import homenode_argv

from homenode.ops.api import StatusClient, handle_request
from homenode.ops.control import Control

WAIT_S = 60.0

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux host")


def _clients(sock: Path) -> set[str]:
    with StatusClient(sock) as c:
        return {row["id"] for row in c.request("status")["clients"]}


def _wait(pred, what: str) -> None:
    end = time.monotonic() + WAIT_S
    while not pred():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_include_exclude_and_sighup_on_a_running_daemon(tmp_path):
    cfg = tmp_path / "homenode.toml"
    cfg.write_text("[processes]\nauto = false\nvms = false\n")
    sock = tmp_path / "status.sock"
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    marker = tmp_path / "hn-reload-marker"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)",
                              marker.name])
    log = open(tmp_path / "log", "w+")  # noqa: SIM115
    daemon = subprocess.Popen(
        [*homenode_argv(), "run", "--dry-run", "--config", str(cfg), "--interval", "0.2s",
         "--socket", str(sock), "--log-format", "json"], stderr=log, stdout=log)
    try:
        _wait(sock.exists, "the socket")
        _wait(lambda: _clients(sock) is not None, "a first status")
        assert f"pid:{worker.pid}" not in _clients(sock)
        hn = [*homenode_argv()]
        r = subprocess.run([*hn, "include", str(worker.pid), "--socket", str(sock)],
                           capture_output=True, text=True, timeout=WAIT_S)
        assert r.returncode == 0, r.stderr
        _wait(lambda: f"pid:{worker.pid}" in _clients(sock), "the included client")
        r = subprocess.run([*hn, "exclude", str(worker.pid), "--socket", str(sock)],
                           capture_output=True, text=True, timeout=WAIT_S)
        assert r.returncode == 0, r.stderr
        _wait(lambda: f"pid:{worker.pid}" not in _clients(sock), "the release")
        # SIGHUP: a new cmdline rule picks up the other process at the next scan.
        cfg.write_text(f"[processes]\nauto = false\nvms = false\ncmdline = ['{marker.name}']\n")
        daemon.send_signal(signal.SIGHUP)
        _wait(lambda: f"pid:{other.pid}" in _clients(sock), "the reloaded rule")
        # A broken file is refused in one line and the daemon goes on.
        cfg.write_text("[processes]\nmin_rss = 'lots'\n")
        daemon.send_signal(signal.SIGHUP)
        _wait(lambda: "reload refused" in (tmp_path / "log").read_text(), "the refusal")
        assert daemon.poll() is None and f"pid:{other.pid}" in _clients(sock)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=WAIT_S) == 0
    finally:
        for p in (daemon, worker, other):
            if p.poll() is None:
                p.kill()
            p.wait()
        log.close()
    msgs = [json.loads(x)["msg"] for x in (tmp_path / "log").read_text().splitlines()
            if x.startswith("{")]
    assert any(m.startswith(f"include pid {worker.pid}") for m in msgs)
    assert any(m.startswith(f"exclude pid {worker.pid}") for m in msgs)
    assert any(m.startswith("reloaded ") for m in msgs)


def test_control_requests_are_validated_and_refused_without_a_daemon():
    from homenode.ops.status import StatusRecorder
    rec = StatusRecorder(source="simulation", policy="esxi")
    ans = handle_request(rec, b'{"get": "include", "pid": 42}')
    assert not ans["ok"] and "only a running daemon" in ans["error"]
    ctl = Control(lambda: None)
    for bad in (b'{"get": "exclude", "pid": "x"}', b'{"get": "exclude", "pid": 1}',
                b'{"get": "exclude", "pid": true}', b'{"get": "include", "pid": 5, "x": 1}'):
        ans = handle_request(rec, bad, ctl)
        assert not ans["ok"] and "\n" not in ans["error"], bad
    assert handle_request(rec, b'{"get": "include", "pid": 4242}', ctl)["ok"]
    assert os.getpid() > 1
