"""Constants, helpers and fixtures of the Linux tests: fixture trees, a hand-moved clock,
real child processes.  (Not named conftest.py: tests import from it by name.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "linux"
SYS_SPARSE = FIXTURES / "sys_sparse"     # nodes 0, 2, 3; node 3 memoryless; CPU 7 offline
SYS_TWO = FIXTURES / "sys_two"           # node 0 = CPU 0, node 1 = CPU 1 (memoryless)
PROC = FIXTURES / "proc"
CGROUP = FIXTURES / "cgroup"
HOMENODE = [sys.executable, "-m", "homenode"]

# A real multithreaded process: N threads parked on an event, M MiB touched, then it
# waits for a line on stdin (or EOF) and exits.
CHILD = r"""
import sys, threading
n, mb = int(sys.argv[1]), int(sys.argv[2])
buf = bytearray(mb << 20)
for i in range(0, len(buf), 4096):
    buf[i] = 1
ev = threading.Event()
for _ in range(n):
    threading.Thread(target=ev.wait, daemon=True).start()
print("ready", flush=True)
sys.stdin.readline()
"""


class StepClock:
    """A clock the test moves by hand (the host reads ``now()`` once per snapshot)."""

    def __init__(self, t: float = 0.0):
        self.t = t

    def now(self) -> float:
        return self.t


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
def proc_copy(tmp_path: Path) -> Path:
    """A writable copy of the fixture /proc tree."""
    dst = tmp_path / "proc"
    shutil.copytree(PROC, dst)
    return dst


def two_cpus() -> bool:
    return {0, 1} <= os.sched_getaffinity(0)


needs_two_cpus = pytest.mark.skipif(not two_cpus(), reason="needs CPUs 0 and 1")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@contextmanager
def child(threads: int = 4, mb: int = 8, cpus: set[int] | None = None
          ) -> Iterator[subprocess.Popen]:
    """A real child with ``threads`` extra threads, ``mb`` MiB touched, started on
    ``cpus`` (inherited by all its threads)."""
    pre = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(threads), str(mb)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         preexec_fn=pre)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        yield p
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(10)


def thread_masks(pid: int) -> dict[int, frozenset[int]]:
    return {int(t): frozenset(os.sched_getaffinity(int(t)))
            for t in os.listdir(f"/proc/{pid}/task")}
