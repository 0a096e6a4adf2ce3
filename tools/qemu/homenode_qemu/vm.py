"""Boot one guest, run one program in it, bring its results back, always within a limit.

The host writes ``run.sh`` and ``params.json`` into a fresh share folder, boots QEMU, and
waits.  Inside, ``init`` chroots into the host's own tree (read-only over 9p) and runs
``run.sh``, which runs the program under ``timeout`` so that it ends, and the guest powers
off cleanly, before the host's own limit; the program writes ``result.json`` into the share.
If the guest is still running at the host's limit, the whole QEMU process group is killed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from homenode_qemu import assets, initramfs
from homenode_qemu.machine import Machine

# Seconds of the host's limit kept for boot and power-off: the guest program's own timeout
# is the host's limit less this, so a slow program still leaves its partial result.json.
BOOT_ALLOWANCE_S = 40.0
GUEST_TIMEOUT_MIN_S = 10.0
KILL_GRACE_S = 5.0          # after `timeout` sends TERM, KILL follows this much later
RUNS_KEPT = 20              # share folders kept under <cache>/runs (the newest ones)

_ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]|\x1bc")


@dataclass
class GuestRun:
    """What one boot left behind."""

    machine: Machine
    argv: list[str]
    share: Path
    wall_s: float
    timed_out: bool                 # the host killed QEMU at its limit
    rc: int | None                  # the program's exit status (124: its guest timeout)
    console: str
    result: dict[str, Any] | None   # result.json, when the program wrote one
    boot_s: float | None            # guest uptime when the program started
    log: str = ""                   # the program's stdout and stderr
    qemu_rc: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.timed_out and self.rc == 0 and self.result is not None

    def why(self) -> str:
        """One paragraph for a failed assertion: what happened, and the logs' tails."""
        state = ("killed at the host's limit" if self.timed_out else
                 f"program exit {self.rc}" if self.rc is not None else
                 f"QEMU exit {self.qemu_rc} before the program ended")
        return (f"guest {self.machine.nodes} nodes, {state}, {self.wall_s:.1f} s wall; "
                f"share {self.share}\n--- program log (tail) ---\n{self.log[-3000:]}\n"
                f"--- console (tail) ---\n{self.console[-2000:]}")


def run_guest(machine: Machine, argv: list[str], *, timeout_s: float,
              params: dict[str, Any] | None = None, share: Path | None = None,
              env: dict[str, str] | None = None) -> GuestRun:
    """Boot ``machine``, run ``argv`` (host paths) inside it, return what it left.

    ``params`` is written to /tmp/share/params.json for the program to read; the program
    writes /tmp/share/result.json.  Never takes longer than ``timeout_s`` (+ a few seconds
    to reap QEMU).
    """
    why = assets.missing()
    if why:
        raise RuntimeError(why)
    cache = assets.cache_dir()
    build = assets.build_dir(cache)
    kernel = assets.find_kernel(cache)
    assert kernel is not None
    image = assets.boot_image(kernel, build)
    initrd = initramfs.build(kernel, build)
    if share is None:
        runs = cache / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        _prune(runs, RUNS_KEPT - 1)
        share = Path(tempfile.mkdtemp(prefix=f"{machine.nodes}n-", dir=runs))
    share.mkdir(parents=True, exist_ok=True)
    (share / "params.json").write_text(json.dumps(params or {}, indent=1))
    guest_timeout = max(GUEST_TIMEOUT_MIN_S, timeout_s - BOOT_ALLOWANCE_S)
    (share / "run.sh").write_text(_run_script(argv, guest_timeout, env or {}))
    console_path = share / "console.log"
    t0 = time.monotonic()
    timed_out = False
    with console_path.open("wb") as console:
        # Own process group: on timeout the kill reaches QEMU and anything it started.
        proc = subprocess.Popen(machine.qemu_argv(image, initrd, share), stdin=subprocess.DEVNULL,
                                stdout=console, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            qemu_rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            qemu_rc = proc.wait()
    wall = time.monotonic() - t0
    text = _ANSI.sub("", console_path.read_text(errors="replace")).replace("\r", "")
    return GuestRun(machine=machine, argv=argv, share=share, wall_s=wall,
                    timed_out=timed_out, rc=_marker(text, "rc", int), console=text,
                    result=_read_json(share / "result.json"),
                    boot_s=_marker(text, "start", float),
                    log=_read_text(share / "guest.log"), qemu_rc=qemu_rc)


def run_python(machine: Machine, module: str, params: dict[str, Any], *, timeout_s: float,
               share: Path | None = None) -> GuestRun:
    """Run ``python -m homenode_qemu.guest <module>`` in the guest with the host's venv."""
    argv = [sys.executable, "-m", "homenode_qemu.guest", module, "/tmp/share/params.json",
            "/tmp/share/result.json"]
    pythonpath = os.pathsep.join([str(assets.HERE.parent), str(assets.REPO / "src")])
    return run_guest(machine, argv, timeout_s=timeout_s, params=params, share=share,
                     env={"PYTHONPATH": pythonpath, "PYTHONDONTWRITEBYTECODE": "1",
                          "HOMENODE_QEMU_GUEST": "1"})


def _prune(runs: Path, keep: int) -> None:
    """Remove all but the ``keep`` newest run folders (a bench run makes one per boot)."""
    old = sorted(runs.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)[keep:]
    for p in old:
        shutil.rmtree(p, ignore_errors=True)


def _run_script(argv: list[str], guest_timeout: float, env: dict[str, str]) -> str:
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
    return (
        "#!/bin/sh\n"
        "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root\n"
        f"{exports}"
        "cd /tmp/share\n"
        f'echo "{initramfs.MARK}: start $(cut -d" " -f1 /proc/uptime)"\n'
        f"timeout -k {KILL_GRACE_S:g} {guest_timeout:.0f} {shlex.join(argv)} "
        "> /tmp/share/guest.log 2>&1 </dev/null\n"
        "rc=$?\n"
        f'echo "{initramfs.MARK}: rc=$rc"\n'
        "exit $rc\n")


def _marker(text: str, key: str, kind: type) -> Any:
    # The first marker of each kind counts: run.sh prints `rc=` before init's own `rc=`.
    m = re.search(rf"^{initramfs.MARK}: {key}[= ](\S+)", text, re.M)
    try:
        return kind(m.group(1)) if m else None
    except ValueError:
        return None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
