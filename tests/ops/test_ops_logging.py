"""Daemon logging: JSON lines, text, and the journal's native protocol on a real socket."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import struct

import pytest

from homenode.errors import InputError
from homenode.model import Reason, SetHome
from homenode.ops.logging import (
    action_fields,
    choose_mode,
    journal_fields,
    journal_key,
    setup_logging,
    stderr_is_journal,
)


@pytest.fixture(autouse=True)
def _restore_logger():
    logger = logging.getLogger("homenode")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    logger.handlers[:], logger.level, logger.propagate = saved


def parse_journal(data: bytes) -> dict[str, str]:
    """Decode one native-protocol datagram (both the KEY=VALUE and the binary form)."""
    out, i = {}, 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, _, v = line.partition(b"=")
            out[k.decode()] = v.decode()
            i = nl + 1
        else:
            (n,) = struct.unpack("<Q", data[nl + 1:nl + 9])
            out[line.decode()] = data[nl + 9:nl + 9 + n].decode()
            assert data[nl + 9 + n:nl + 10 + n] == b"\n"
            i = nl + 10 + n
    return out


def test_json_lines_carry_the_action_fields():
    buf = io.StringIO()
    setup_logging("json", stream=buf)
    a = SetHome("web01", 0, 1, Reason.BALANCE, 12.34567, "imbalance 0.3 -> 0.1")
    logging.getLogger("homenode.linux").info("moved %s", a.client, extra=action_fields(a))
    logging.getLogger("homenode").debug("not shown at INFO")
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1
    rec = json.loads(lines[0])
    assert rec["msg"] == "moved web01" and rec["level"] == "info"
    assert rec["logger"] == "homenode.linux"
    assert {k: rec[k] for k in ("client", "src", "dst", "reason", "score", "ok")} == {
        "client": "web01", "src": 0, "dst": 1, "reason": "balance", "score": 12.3457,
        "ok": True}


def test_json_lines_keep_tracebacks_on_one_line():
    buf = io.StringIO()
    setup_logging("json", stream=buf)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("homenode").exception("tick failed")
    (line,) = buf.getvalue().splitlines()
    assert "ValueError: boom" in json.loads(line)["exc"]


def test_text_mode_for_a_terminal():
    buf = io.StringIO()
    setup_logging("text", stream=buf)
    logging.getLogger("homenode").warning("slow tick", extra={"ms": 12})
    assert buf.getvalue() == "WARNING homenode: slow tick ms=12\n"


def test_journal_entries_on_a_native_socket(tmp_path):
    path = str(tmp_path / "journal.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as journald:
        journald.bind(path)
        journald.settimeout(10)
        setup_logging("journal", journal_path=path, stream=io.StringIO())
        log = logging.getLogger("homenode.daemon")
        a = SetHome("vm 7", 1, 0, Reason.LOCALITY, 3.0)
        log.info("moved", extra=action_fields(a))
        log.error("two\nlines", extra={"weird-key": "x"})
        first = parse_journal(journald.recv(65536))
        second = parse_journal(journald.recv(65536))
    assert first["MESSAGE"] == "moved" and first["PRIORITY"] == "6"
    assert first["SYSLOG_IDENTIFIER"] == "homenode"
    assert first["HOMENODE_CLIENT"] == "vm 7" and first["HOMENODE_REASON"] == "locality"
    assert first["CODE_FUNC"] == "test_journal_entries_on_a_native_socket"
    assert second["MESSAGE"] == "two\nlines" and second["PRIORITY"] == "3"
    assert second["HOMENODE_WEIRD_KEY"] == "x"


def test_an_unreachable_journal_falls_back_to_stderr(tmp_path):
    buf = io.StringIO()
    setup_logging("journal", journal_path=str(tmp_path / "gone.sock"), stream=buf)
    logging.getLogger("homenode").info("still logged")
    assert buf.getvalue() == "INFO homenode: still logged\n"


def test_journal_keys_are_valid_field_names():
    assert journal_key("client") == "HOMENODE_CLIENT"
    assert journal_key("_x-y.z") == "HOMENODE_X_Y_Z"
    rec = logging.LogRecord("homenode", logging.INFO, "f.py", 1, "m", None, None)
    for line in journal_fields(rec, "m").split(b"\n"):
        if line:
            key = line.split(b"=")[0]
            assert key == key.upper() and not key.startswith(b"_")


def test_auto_mode_follows_journal_stream(monkeypatch, tmp_path):
    f = open(tmp_path / "stderr", "w")  # noqa: SIM115
    try:
        st = os.fstat(f.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert stderr_is_journal(f)
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + 1}")
        assert not stderr_is_journal(f)
        assert choose_mode("auto", f) == "text"          # a file, not the journal
        monkeypatch.delenv("JOURNAL_STREAM")
        assert not stderr_is_journal(f)
    finally:
        f.close()
    with pytest.raises(InputError, match="--log = 'xml': choose from auto, journal"):
        choose_mode("xml")


def test_a_dict_extra_is_spread_into_fields(tmp_path):
    """The daemon's action log passes extra={"action": {...}}."""
    buf = io.StringIO()
    setup_logging("json", stream=buf)
    logging.getLogger("homenode.actions").info(
        "home", extra={"action": {"kind": "home", "client": "db1", "from": 0, "to": 1}})
    rec = json.loads(buf.getvalue())
    assert (rec["kind"], rec["client"], rec["from"], rec["to"]) == ("home", "db1", 0, 1)


def test_run_logs_text_through_a_pipe_by_default_as_documented(tmp_path):
    """docs/linux.md: `auto` (the default) is text unless stderr is the journal, also when
    stderr is a pipe; --log-level warning drops the info lines."""
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / "homenode"
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    base = [str(exe), "run", "--dry-run", "--once", "--config", str(tmp_path / "none.toml")]
    (tmp_path / "none.toml").write_text("[processes]\nauto = false\nvms = false\n")
    proc = subprocess.run(base, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines and all(ln.startswith(("INFO ", "WARNING ")) for ln in lines), lines
    proc = subprocess.run([*base, "--log-level", "warning"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0 and not any(ln.startswith("INFO ")
                                            for ln in proc.stderr.splitlines())
    proc = subprocess.run([*base, "--log-format", "json"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert json.loads(proc.stderr.splitlines()[0])["level"] == "info"


def test_text_lines_do_not_repeat_a_structured_action():
    buf = io.StringIO()
    setup_logging("text", stream=buf)
    logging.getLogger("homenode.actions").info(
        "home  client=vm1 from=- to=1 ok", extra={"action": {"client": "vm1", "dst": 1},
                                                 "pid": 7})
    line = buf.getvalue().strip()
    assert line == "INFO homenode.actions: home  client=vm1 from=- to=1 ok pid=7", line
