"""Running one row of docs/bad-input.md: the recipe of its area, in a scratch directory.

Areas (the doc explains each):

- ``config``: the input is /etc/homenode.toml's content, as ``bad.toml``;
  ``homenode run --config bad.toml --dry-run --once --no-api``.
- ``scenario``: the input is a scenario file, ``bad.toml``; ``homenode simulate bad.toml``.
- ``bitbrains`` / ``planetlab``: the input is one trace file, ``traces/vm.csv`` or
  ``traces/slice``, read through a scenario's ``[[traces]]`` table.
- ``cli``: the input is the command line after ``homenode``.
- ``api``: the input is one request line sent to a live status API; the message is the
  ``error`` of the answer.
- ``api-cli``: ``homenode explain INPUT`` against that live API.

CLI areas go through ``homenode.cli.main`` in-process: its output, exit status and the
absence of a traceback are the ones a user sees (tests/test_bad_input.py runs the same
entry point as a subprocess).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import socket
from dataclasses import dataclass
from pathlib import Path

# | 12 | config | `` input `` | `` message `` |   (double backticks: messages may hold one)
ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*([a-z-]+)\s*\|\s*`` (.*?) ``\s*\|\s*`` (.*?) ``\s*\|\s*$")

TRACE_SCENARIO = """duration = 600
traces_dir = "traces"
[host]
nodes = 2
[[traces]]
format = "{fmt}"
files = "{file}"
step = 300
"""


@dataclass(frozen=True)
class Row:
    number: int
    area: str
    input: str        # as written in the doc: \\n and \\t stand for a newline and a tab
    message: str

    @property
    def text(self) -> str:
        return self.input.replace("\\n", "\n").replace("\\t", "\t")


@dataclass
class Outcome:
    code: int | None       # exit status (None: the API, which answers instead)
    out: str               # what the user sees: stderr, or the API's error
    traceback: bool


def rows(doc: Path) -> list[Row]:
    out = []
    for line in doc.read_text().splitlines():
        m = ROW.match(line)
        if m:
            out.append(Row(int(m.group(1)), m.group(2), m.group(3), m.group(4)))
    return out


def run_cli(argv: list[str]) -> Outcome:
    from homenode.cli import main
    err, out = io.StringIO(), io.StringIO()
    code: int | None = 0
    tb = False
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            main(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:                     # an escaping exception: a traceback
            tb, code = True, None
    text = err.getvalue()
    return Outcome(code, text.strip(), tb or "Traceback" in text)


def run_row(row: Row, tmp: Path, api_socket: Path | None = None) -> Outcome:
    """Run ``row`` with ``tmp`` as the working directory (paths in messages relative; the
    API's socket is expected at ``tmp/../s.sock``)."""
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        return _run(row, tmp, api_socket)
    finally:
        os.chdir(cwd)


def _run(row: Row, tmp: Path, api_socket: Path | None) -> Outcome:
    text = row.text
    if row.area == "config":
        Path("bad.toml").write_text(text)
        return run_cli(["run", "--config", "bad.toml", "--dry-run", "--once", "--no-api"])
    if row.area == "scenario":
        Path("bad.toml").write_text(text)
        return run_cli(["simulate", "bad.toml", "--out", "out", "--no-plots", "-q"])
    if row.area in ("bitbrains", "planetlab"):
        name = "vm.csv" if row.area == "bitbrains" else "slice"
        Path("traces").mkdir(exist_ok=True)
        Path("traces", name).write_text(text)
        Path("scen.toml").write_text(TRACE_SCENARIO.format(fmt=row.area, file=name))
        return run_cli(["simulate", "scen.toml", "--out", "out", "--no-plots", "-q"])
    if row.area == "cli":
        return run_cli(shlex.split(text))
    if row.area == "api":
        assert api_socket is not None
        return _ask(api_socket, text.encode() + b"\n")
    if row.area == "api-cli":
        assert api_socket is not None      # relative: the message names the socket
        return run_cli(["explain", *shlex.split(text), "--socket",
                        os.path.relpath(api_socket)])
    raise ValueError(f"unknown area {row.area!r}")


def _ask(path: Path, line: bytes) -> Outcome:
    import json
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(line)
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    answer = json.loads(buf.split(b"\n")[0])
    return Outcome(None, answer.get("error", "") if not answer.get("ok") else "",
                   "Traceback" in answer.get("error", ""))
