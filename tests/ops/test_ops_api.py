"""The status API on a real Unix socket: permissions, protocol, bad requests."""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homenode.errors import HomenodeError, InputError
from homenode.ops.api import (
    MAX_REQUEST_BYTES,
    StatusClient,
    default_socket_path,
    handle_request,
    serve_status,
)


@pytest.fixture
def served(shift_state, tmp_path):
    path = tmp_path / "run" / "status.sock"
    with serve_status(shift_state.status, path) as server:
        yield server


def _raw(path: Path, payload: bytes) -> list[dict]:
    """Send raw bytes, half-close, and read every answer line."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return [json.loads(line) for line in data.splitlines()]


def test_socket_is_private_to_the_daemons_user(served):
    st_ = os.stat(served.path)
    assert stat.S_ISSOCK(st_.st_mode)
    assert stat.S_IMODE(st_.st_mode) == 0o600
    assert st_.st_uid == os.geteuid()
    assert stat.S_IMODE(os.stat(served.path.parent).st_mode) == 0o700
    assert [p.name for p in served.path.parent.iterdir()] == ["status.sock"]


def test_requests_on_one_connection(served, shift_state):
    with StatusClient(served.path) as c:
        assert c.request("ping") == {"version": 1, "source": "simulation"}
        doc = c.request("status")
        assert doc["clients"] == json.loads(json.dumps(shift_state.status.status()["clients"]))
        assert c.request("topology")["distance"] == doc["topology"]["distance"]
        cid = doc["clients"][0]["id"]
        assert c.request("client", client=cid)["id"] == cid
        assert c.request("explain", client=cid)["client"] == cid
        assert cid in c.request("clients")


@pytest.mark.parametrize(("payload", "fragment"), [
    (b"not json\n", "request = 'not json': not a JSON object"),
    (b"[1, 2]\n", "request = [1, 2]: expected a JSON object"),
    (b'{"get": "nope"}\n', "request.get = 'nope': unknown request"),
    (b'{"want": "status"}\n', "request.get = None: unknown request"),
    (b'{"get": "explain"}\n', "request.client = None: expected a client id"),
    (b'{"get": "client", "client": "ghost"}\n', "request.client = 'ghost': no such client"),
    (b'{"get": "status", "verbose": 1}\n', "request.verbose = 1: unknown field"),
    (b"\xff\xfe\n", "not a JSON object"),
])
def test_bad_requests_get_a_one_line_error_and_the_connection_goes_on(served, payload,
                                                                      fragment):
    answers = _raw(served.path, payload + b'{"get": "ping"}\n')
    assert len(answers) == 2
    assert answers[0]["ok"] is False and fragment in answers[0]["error"]
    assert "\n" not in answers[0]["error"]
    assert answers[1] == {"ok": True, "data": {"version": 1, "source": "simulation"}}


def test_an_oversized_request_is_refused_and_the_connection_closed(served):
    answers = _raw(served.path, b"{" + b" " * (2 * MAX_REQUEST_BYTES) + b'}\n{"get":"ping"}\n')
    assert len(answers) == 1
    assert answers[0]["ok"] is False and "longer than" in answers[0]["error"]
    with StatusClient(served.path) as c:      # the server itself is unharmed
        assert c.request("ping")["version"] == 1


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_give_a_json_answer(line):
    from homenode.ops.status import StatusRecorder
    answer = handle_request(StatusRecorder(), line)
    json.dumps(answer, allow_nan=False)
    assert set(answer) in ({"ok", "data"}, {"ok", "error"})
    if not answer["ok"]:
        assert "\n" not in answer["error"]


def test_the_client_reports_a_missing_or_dead_socket_in_one_line(tmp_path):
    with pytest.raises(HomenodeError, match="no status socket"):
        StatusClient(tmp_path / "absent.sock").request("ping")
    dead = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(dead))
    s.close()                                  # a socket file nobody listens on
    with pytest.raises(HomenodeError, match="nobody is serving"):
        StatusClient(dead).request("ping")


def test_a_stale_socket_is_replaced_and_a_live_one_is_not(shift_state, tmp_path):
    path = tmp_path / "s.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    with serve_status(shift_state.status, path) as first:
        with pytest.raises(HomenodeError, match="another homenode is serving"):
            serve_status(shift_state.status, path)
        with StatusClient(first.path) as c:   # the live one was left alone
            assert c.request("ping")["version"] == 1
    assert not path.exists()                  # close() removed its own socket


def test_a_regular_file_at_the_path_is_an_input_error(shift_state, tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(InputError, match="exists and is not a socket"):
        serve_status(shift_state.status, path)
    assert path.read_text() == "x"


def test_close_leaves_a_successors_socket_alone(shift_state, tmp_path):
    path = tmp_path / "s.sock"
    server = serve_status(shift_state.status, path)
    os.unlink(path)                            # someone else took the path over
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(str(path))
    try:
        server.close()
        assert path.exists()
    finally:
        other.close()


def test_default_socket_path(monkeypatch, tmp_path):
    monkeypatch.setenv("HOMENODE_SOCKET", str(tmp_path / "x.sock"))
    assert default_socket_path() == tmp_path / "x.sock"
    monkeypatch.delenv("HOMENODE_SOCKET")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "getuid", lambda: 1000)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert default_socket_path() == Path("/run/user/1000/homenode/status.sock")
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert default_socket_path() == Path("/tmp/homenode-1000/status.sock")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert default_socket_path() == Path("/run/homenode/status.sock")


def test_connections_beyond_the_limit_are_refused_with_an_error(served):
    from homenode.ops.api import MAX_CONNECTIONS
    held = []
    try:
        for _ in range(MAX_CONNECTIONS):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect(str(served.path))
            s.sendall(b'{"get": "ping"}\n')
            assert json.loads(s.recv(65536))["ok"] is True   # each holds a slot now
            held.append(s)
        answers = _raw(served.path, b'{"get": "ping"}\n')
        assert answers[0]["ok"] is False and "too many connections" in answers[0]["error"]
    finally:
        for s in held:
            s.close()
    end = time.monotonic() + 30
    while True:                                   # slots come back when clients leave
        try:
            with StatusClient(served.path) as c:
                assert c.request("ping")["version"] == 1
            break
        except HomenodeError:
            assert time.monotonic() < end, "the slots never came back"
            time.sleep(0.05)
