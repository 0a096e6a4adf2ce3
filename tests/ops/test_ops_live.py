"""`homenode simulate --live`: the API and the exporter of a running simulation."""

from __future__ import annotations

import re
import signal
import subprocess
import time
import urllib.request

import pytest
from ops_helpers import homenode_argv
from prometheus_client.parser import text_string_to_metric_families

from homenode.cli import main
from homenode.ops.api import StatusClient

TIMEOUT_S = 120


def test_a_live_simulation_serves_status_and_metrics_then_cleans_up(tmp_path):
    sock = tmp_path / "api" / "status.sock"
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [*homenode_argv(), "simulate", "burst", "--live", "--speed", "4", "--duration", "600",
         "--socket", str(sock), "--metrics", "127.0.0.1:0", "--out", str(out), "-q",
         "--set", "min_residence=33"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = proc.stderr.readline()
        m = re.search(r"status API on (\S+), metrics at (http://127\.0\.0\.1:\d+/metrics)",
                      banner)
        assert m, banner
        assert m.group(1).rstrip(",") == str(sock)
        with StatusClient(sock) as c:
            # The API is up before the first tick; wait for clients (no timing asserted).
            end = time.monotonic() + TIMEOUT_S
            while not (doc := c.request("status"))["clients"] and time.monotonic() < end:
                time.sleep(0.05)
            ex = c.request("explain", client=doc["clients"][0]["id"])
        assert doc["ticks"] > 0
        assert ex["settings"]["min_residence"] == 33.0     # the settings in force
        assert doc["source"] == "simulation" and doc["scenario"] == "burst"
        assert doc["policy"] == "esxi" and len(doc["topology"]["nodes"]) == 2
        with urllib.request.urlopen(m.group(2), timeout=30) as r:
            families = {f.name: f for f in text_string_to_metric_families(r.read().decode())}
        for name in ("homenode_node_load_ratio", "homenode_node_free_memory_bytes",
                     "homenode_client_locality_ratio", "homenode_client_home_node",
                     "homenode_home_changes", "homenode_pages_migrated",
                     "homenode_tick_duration_seconds"):
            assert name in families, name
        nodes = {s.labels["node"] for s in families["homenode_node_load_ratio"].samples}
        assert nodes == {"0", "1"}
        # A simulation that is interrupted still removes its socket, writes nothing half.
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=TIMEOUT_S) == 130
        assert not sock.exists()
        assert not (out / "summary.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_a_live_run_writes_the_same_files_as_a_plain_one(tmp_path):
    live, plain = tmp_path / "live", tmp_path / "plain"
    main(["simulate", "burst", "--duration", "12", "--out", str(plain), "-q", "--no-plots"])
    main(["simulate", "burst", "--duration", "12", "--out", str(live), "-q", "--no-plots",
          "--live", "--speed", "1000", "--socket", str(tmp_path / "s.sock")])
    for name in ("timeseries.csv", "nodes.csv", "actions.csv", "decisions.jsonl"):
        assert (live / name).read_bytes() == (plain / name).read_bytes(), name
    assert not (tmp_path / "s.sock").exists()


@pytest.mark.parametrize(("extra", "message"), [
    (["--speed", "3"], "--speed = '3.0': only applies with --live"),
    (["--metrics", "127.0.0.1:0"], "--metrics = '127.0.0.1:0': only applies with --live"),
    (["--socket", "/tmp/x.sock"], "--socket = '/tmp/x.sock': only applies with --live"),
    (["--live", "--speed", "0"], "--speed = 0.0: must be positive"),
    (["--live", "--metrics", "0.0.0.0:9851"], "must be a loopback address"),
])
def test_bad_live_options_are_one_line_errors(tmp_path, capsys, extra, message):
    sock = tmp_path / "s.sock"
    argv = ["simulate", "burst", "--duration", "5", "--out", str(tmp_path / "o"), "-q", *extra]
    if "--live" in extra:
        argv += ["--socket", str(sock)]
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not sock.exists() and not (tmp_path / "o").exists()


def test_status_batch_and_sigterm_on_a_live_simulation(tmp_path):
    """`homenode status` (text and --json) and `top --batch` read a live run; SIGTERM ends
    it and removes its socket."""
    import csv
    import io
    import json

    sock = tmp_path / "status.sock"
    proc = subprocess.Popen(
        [*homenode_argv(), "simulate", "shift", "--live", "--speed", "5", "--duration", "600",
         "--socket", str(sock), "--out", str(tmp_path / "out"), "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "status API on" in proc.stderr.readline()
        with StatusClient(sock) as c:
            end = time.monotonic() + TIMEOUT_S
            # shift starts its 16 VMs 100 ms of simulated time apart
            while len(c.request("status")["clients"]) < 16 and time.monotonic() < end:
                time.sleep(0.05)
        run = [*homenode_argv()]
        text = subprocess.run([*run, "status", "--socket", str(sock)], capture_output=True,
                              text=True, timeout=TIMEOUT_S)
        assert text.returncode == 0, text.stderr
        lines = text.stdout.splitlines()
        head = next(x for x in lines if x.startswith("client"))
        assert head.split()[:7] == ["client", "NHN", "NMIG", "N0", "MiB", "N1", "MiB"]
        assert sum(1 for x in lines if x.startswith("vm")) == 16    # every client: no cut
        doc = json.loads(subprocess.run([*run, "status", "--json", "--socket", str(sock)],
                                        capture_output=True, text=True,
                                        timeout=TIMEOUT_S).stdout)
        assert isinstance(doc["imbalance"], float) and len(doc["clients"]) == 16
        batch = subprocess.run([*run, "top", "--batch", "--delay", "0.2", "--count", "3",
                                "--socket", str(sock)], capture_output=True, text=True,
                               timeout=TIMEOUT_S)
        assert batch.returncode == 0, batch.stderr
        rows = list(csv.DictReader(io.StringIO(batch.stdout)))
        assert len(rows) == 3 * 16 and {"mem_n0_mib", "mem_n1_mib"} <= set(rows[0])
        r = rows[0]
        assert float(r["mem_n0_mib"]) + float(r["mem_n1_mib"]) == pytest.approx(
            float(r["local_mib"]) + float(r["remote_mib"]))
        assert len({row["time_s"] for row in rows}) == 3       # three distinct samples
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=TIMEOUT_S) == 143
        assert not sock.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
