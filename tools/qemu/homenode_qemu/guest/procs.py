"""Worker processes in the guest: start them, read their reports, stop them, reuse a PID."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NS_LAST_PID = "/proc/sys/kernel/ns_last_pid"
READY_TIMEOUT_S = 120.0     # first touch of a few hundred MiB under TCG takes seconds
POLL_S = 0.02


@dataclass
class Worker:
    proc: subprocess.Popen
    report_path: Path
    tag: str
    mib: int
    addr: int = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def report(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.report_path.read_text())
        except (OSError, ValueError):
            return None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> dict[str, Any]:
        """SIGTERM, wait, and return the final report with the exit status in it."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        rep = self.report() or {}
        rep["rc"] = rc
        return rep


def start(binary: str, mib: int, *, rundir: Path, tag: str = "w",
          touch_cpus: list[int] | None = None, touch_node: int | None = None,
          run_cpus: list[int] | str | None = None, idle: bool = False, wait: bool = True,
          seconds: float = 0) -> Worker:
    """Start ``hn-worker``; with ``wait``, return once its memory is touched."""
    rundir.mkdir(parents=True, exist_ok=True)
    n = len(list(rundir.glob("*.json*")))
    report = rundir / f"{tag}-{n}-{time.monotonic_ns()}.json"
    argv = [binary, "--mib", str(mib), "--report", str(report), "--tag", tag]
    if touch_cpus is not None:
        argv += ["--touch-cpus", _cpus(touch_cpus)]
    if touch_node is not None:
        argv += ["--touch-node", str(touch_node)]
    if run_cpus is not None:
        argv += ["--run-cpus", run_cpus if isinstance(run_cpus, str) else _cpus(run_cpus)]
    if idle:
        argv.append("--idle")
    if seconds:
        argv += ["--seconds", str(seconds)]
    _warm(binary)
    # close_fds=False and an absolute path let subprocess use posix_spawn (vfork + exec at
    # once): the child shows the parent's command line only for microseconds.  A daemon
    # that judges a new PID by its command line once, in that window, would never see the
    # worker (homenode's discovery does that: see docs/qemu.md, "Known gaps").
    w = Worker(subprocess.Popen(argv, stdin=subprocess.DEVNULL, close_fds=False),
               report, tag, mib)
    if wait:
        wait_ready([w])
    return w


_warmed: set[str] = set()


def _warm(binary: str) -> None:
    """Read the binary once so that exec does not wait for 9p on the first start."""
    if binary not in _warmed:
        Path(binary).read_bytes()
        _warmed.add(binary)


def wait_ready(workers: list[Worker], timeout: float = READY_TIMEOUT_S) -> None:
    """Block until every worker has touched its memory (its report says "running")."""
    deadline = time.monotonic() + timeout
    for w in workers:
        while True:
            rep = w.report()
            if rep and rep.get("phase") in ("running", "done"):
                w.addr = int(rep["addr"])
                break
            if not w.alive():
                raise RuntimeError(f"worker {w.pid} exited with {w.proc.returncode} before "
                                   "its memory was touched")
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker {w.pid} not ready after {timeout:.0f} s")
            time.sleep(POLL_S)


def start_with_pid(pid: int, binary: str, mib: int, *, rundir: Path, tag: str,
                   tries: int = 20, **kw: Any) -> Worker | None:
    """Start a worker that gets exactly ``pid`` (a reused PID), or None if others raced us.

    Writing N-1 to ns_last_pid makes the next fork get N when N is free (CAP_SYS_ADMIN).
    """
    for _ in range(tries):
        with open(NS_LAST_PID, "w") as f:
            f.write(str(pid - 1))
        w = start(binary, mib, rundir=rundir, tag=tag, wait=False, **kw)
        if w.pid == pid:
            wait_ready([w])
            return w
        w.proc.kill()
        w.proc.wait()
        try:
            os.kill(pid, 0)
            return None         # someone else took the PID: it is not free any more
        except ProcessLookupError:
            continue
    return None


def affinity(pid: int) -> list[int]:
    return sorted(os.sched_getaffinity(pid))


def _cpus(cpus: list[int]) -> str:
    return ",".join(str(c) for c in cpus)
