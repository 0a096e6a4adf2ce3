"""The status API: JSON lines on a Unix socket, readable only by the daemon's user.

Protocol (see docs/operations.md): the client sends one JSON object per line, such as
``{"get": "status"}`` or ``{"get": "explain", "client": "web01"}``; the server answers
each with one line, ``{"ok": true, "data": ...}`` or ``{"ok": false, "error": "..."}``,
the error being a single line naming the field and the value.  A connection may carry
any number of requests.

The socket is bound under a temporary name, made mode 0600 and then renamed into
place, so it is never reachable at its public path with looser permissions and no
process-wide umask is touched (the control loop may be writing files meanwhile).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from homenode.errors import HomenodeError, InputError
from homenode.inputs import Table
from homenode.ops.status import SCHEMA_VERSION, StatusRecorder

SOCKET_ENV = "HOMENODE_SOCKET"
SOCKET_NAME = "status.sock"
SOCKET_MODE = 0o600
MAX_REQUEST_BYTES = 4096     # a request is a tiny object; anything longer is refused
IDLE_TIMEOUT_S = 30.0        # a connection silent this long is closed
MAX_CONNECTIONS = 16         # concurrent connections; more are answered with an error
CLIENT_TIMEOUT_S = 10.0      # how long `top`/`explain` wait for an answer
MAX_RESPONSE_BYTES = 256 << 20   # a client refuses answers larger than this
DRAIN_BYTES = 1 << 20        # input discarded after refusing an oversized request
DRAIN_TIMEOUT_S = 1.0
SHUTDOWN_POLL_S = 0.1        # how often the serving thread checks for close()


def default_socket_path() -> Path:
    """$HOMENODE_SOCKET, else /run/homenode/ for root, else the user's runtime dir."""
    env = os.environ.get(SOCKET_ENV)
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/run/homenode") / SOCKET_NAME
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) / "homenode" if runtime else Path(f"/tmp/homenode-{os.getuid()}")
    return base / SOCKET_NAME


# --- requests (pure: a line in, a response object out) ---------------------------------

def _need_client(req: dict[str, Any]) -> str:
    cid = req.get("client")
    if not isinstance(cid, str) or not cid:
        raise InputError("request.client", cid, "expected a client id (a non-empty string)")
    return cid


def _get_client(rec: StatusRecorder, req: dict[str, Any]) -> Any:
    cid = _need_client(req)
    row = rec.client(cid)
    if row is None:
        raise InputError("request.client", cid, "no such client on this host")
    return row


def _get_explain(rec: StatusRecorder, req: dict[str, Any]) -> Any:
    cid = _need_client(req)
    doc = rec.explain(cid)
    if doc is None:
        raise InputError("request.client", cid, "no such client, and no history of one")
    return doc


REQUESTS: dict[str, Callable[[StatusRecorder, dict[str, Any]], Any]] = {
    "ping": lambda rec, req: {"version": SCHEMA_VERSION, "source": rec.source},
    "status": lambda rec, req: rec.status(),
    "topology": lambda rec, req: rec.topology_view(),
    "client": _get_client,
    "explain": _get_explain,
    "clients": lambda rec, req: rec.known_clients(),
}


CONTROL_REQUESTS = ("include", "exclude")   # numad -p / -x: the daemon only


def handle_request(rec: StatusRecorder, line: bytes, control: Any = None) -> dict[str, Any]:
    """One request line to one response object; every failure is a one-line error.

    ``control`` (an ``ops.control.Control``) serves include/exclude; without it (a
    simulation) they are refused.  They need nothing more than the socket itself, whose
    mode 0600 already limits it to the daemon's user and root."""
    try:
        try:
            req = json.loads(line)
        except (UnicodeDecodeError, ValueError):
            raise InputError("request", _shown(line), "not a JSON object") from None
        if not isinstance(req, dict):
            raise InputError("request", req, "expected a JSON object such as "
                             '{"get": "status"}')
        t = Table(req, "request.", None)      # the same checked reads as every input
        what = t.raw("get", None)
        if isinstance(what, str) and what in CONTROL_REQUESTS:
            pid = t.raw("pid", None)
            t.done()
            if control is None:
                raise t.fail("get", what, "only a running daemon takes include/exclude")
            return {"ok": True, "data": control.request(what, pid)}
        handler = REQUESTS.get(what) if isinstance(what, str) else None
        if handler is None:
            raise t.fail("get", what, f"unknown request; choose from "
                         f"{', '.join([*REQUESTS, *CONTROL_REQUESTS])}")
        t.raw("client", None)
        t.done()
        return {"ok": True, "data": handler(rec, req)}
    except HomenodeError as e:
        return {"ok": False, "error": _one_line(str(e))}


def _shown(line: bytes) -> str:
    return line.decode("utf-8", "replace").strip()


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _encode(obj: dict[str, Any]) -> bytes:
    # allow_nan=False: a stray NaN must fail here, loudly, not reach a client as
    # invalid JSON.
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode() + b"\n"


# --- the server --------------------------------------------------------------------------

class _Handler(socketserver.StreamRequestHandler):
    timeout = IDLE_TIMEOUT_S
    server: _Server

    def handle(self) -> None:
        if not self.server.slots.acquire(blocking=False):
            self._send({"ok": False, "error": f"too many connections (at most "
                        f"{MAX_CONNECTIONS}); try again"})
            self._drain()
            return
        try:
            self._serve()
        finally:
            self.server.slots.release()

    def _serve(self) -> None:
        while True:
            try:
                line = self.rfile.readline(MAX_REQUEST_BYTES + 1)
            except (TimeoutError, OSError):
                return
            if not line:
                return
            if len(line) > MAX_REQUEST_BYTES and not line.endswith(b"\n"):
                self._send({"ok": False, "error": f"request = {len(line)}+ bytes: longer "
                            f"than {MAX_REQUEST_BYTES} bytes; closing"})
                self._drain()
                return
            if not line.strip():
                continue
            try:
                reply = _encode(handle_request(self.server.recorder, line,
                                               self.server.control))
            except (TypeError, ValueError) as e:   # a bug, reported as one line
                reply = _encode({"ok": False, "error": f"internal error: {_one_line(str(e))}"})
            if not self._write(reply):
                return

    def _drain(self) -> None:
        """Discard what the client already sent, so that closing does not reset the
        connection (which can destroy the error reply before the client reads it)."""
        try:
            self.request.shutdown(socket.SHUT_WR)
            self.request.settimeout(DRAIN_TIMEOUT_S)
            left = DRAIN_BYTES
            while left > 0 and (chunk := self.request.recv(min(left, 65536))):
                left -= len(chunk)
        except OSError:
            pass

    def _send(self, obj: dict[str, Any]) -> None:
        self._write(_encode(obj))

    def _write(self, data: bytes) -> bool:
        try:
            self.wfile.write(data)
            self.wfile.flush()
            return True
        except OSError:   # the client went away
            return False


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, path: Path, recorder: StatusRecorder, control: Any = None):
        self.recorder = recorder
        self.control = control
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.public_path = path
        super().__init__(str(path), _Handler, bind_and_activate=False)

    def server_bind(self) -> None:
        path = self.public_path
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        self.socket.bind(str(tmp))
        os.chmod(tmp, SOCKET_MODE)
        os.rename(tmp, path)
        self.server_address = str(path)


class StatusServer:
    """The API served from a background thread; ``close()`` stops it and removes the
    socket (only if the file at the path is still the one it created)."""

    def __init__(self, recorder: StatusRecorder, path: Path, control: Any = None):
        self.path = Path(path)
        _prepare(self.path)
        self._server = _Server(self.path, recorder, control)
        try:
            self._server.server_bind()
            self._server.server_activate()
        except OSError as e:
            self._server.server_close()
            raise InputError("--socket", str(self.path), f"cannot serve the status API "
                             f"there: {e.strerror or e}") from None
        self._inode = os.stat(self.path).st_ino
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        args=(SHUTDOWN_POLL_S,), name="homenode-api",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        with contextlib.suppress(FileNotFoundError):
            if os.stat(self.path).st_ino == self._inode:
                self.path.unlink()

    def __enter__(self) -> StatusServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_status(recorder: StatusRecorder, path: Path | str | None = None,
                 control: Any = None) -> StatusServer:
    """Serve ``recorder`` on the Unix socket ``path`` (default: ``default_socket_path()``);
    with ``control``, also the daemon's include/exclude requests."""
    return StatusServer(recorder, Path(path) if path else default_socket_path(), control)


def _prepare(path: Path) -> None:
    """Create the socket's directory (0700), and clear a stale socket left by a crash.

    A live one -- another homenode answering there -- is an error, not replaced."""
    if not path.parent.exists():
        try:
            path.parent.mkdir(parents=True, mode=0o700)
        except OSError as e:
            raise InputError("--socket", str(path), f"cannot create its directory: "
                             f"{e.strerror or e}") from None
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise InputError("--socket", str(path), "exists and is not a socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink(missing_ok=True)   # stale: nobody listens any more
            return
        except OSError:
            pass
    raise HomenodeError(f"{path}: another homenode is serving there (stop it, or choose "
                        f"another --socket)")


# --- the client ---------------------------------------------------------------------------

class StatusClient:
    """Requests to a running daemon or live simulation; errors become HomenodeError."""

    def __init__(self, path: Path | str | None = None, timeout: float = CLIENT_TIMEOUT_S):
        self.path = Path(path) if path else default_socket_path()
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buf = b""

    def request(self, get: str, **params: Any) -> Any:
        """The ``data`` of the answer to ``{"get": get, **params}``; reconnects once if
        the connection had dropped."""
        line = json.dumps({"get": get, **params}).encode() + b"\n"
        for attempt in (0, 1):
            try:
                sock = self._connect()
                sock.sendall(line)
                reply = self._readline(sock)
                break
            except (BrokenPipeError, ConnectionResetError, EOFError):
                self.close()
                if attempt:
                    raise HomenodeError(f"{self.path}: the server closed the "
                                        f"connection") from None
            except OSError as e:
                self.close()
                raise HomenodeError(f"{self.path}: {e.strerror or e}") from None
        try:
            answer = json.loads(reply)
        except ValueError:
            raise HomenodeError(f"{self.path}: the answer is not JSON") from None
        if not isinstance(answer, dict) or not answer.get("ok"):
            err = answer.get("error") if isinstance(answer, dict) else None
            raise HomenodeError(f"{self.path}: {err or 'malformed answer'}")
        return answer.get("data")

    def _connect(self) -> socket.socket:
        if self._sock is None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(self.timeout)
            try:
                s.connect(str(self.path))
            except FileNotFoundError:
                s.close()
                raise HomenodeError(f"{self.path}: no status socket (is `homenode run` or "
                                    f"`homenode simulate --live` running?)") from None
            except ConnectionRefusedError:
                s.close()
                raise HomenodeError(f"{self.path}: nobody is serving the status API "
                                    f"there") from None
            except PermissionError:
                s.close()
                raise HomenodeError(f"{self.path}: permission denied (the socket is mode "
                                    f"0600: run as the daemon's user)") from None
            self._sock = s
            self._buf = b""
        return self._sock

    def _readline(self, sock: socket.socket) -> bytes:
        while b"\n" not in self._buf:
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise EOFError
            self._buf += chunk
            if len(self._buf) > MAX_RESPONSE_BYTES:
                raise HomenodeError(f"{self.path}: answer larger than "
                                    f"{MAX_RESPONSE_BYTES} bytes")
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> StatusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
