"""homenode.linux.kernel.identity: an action holds the very process it is for."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from linux_support import needs_root

from homenode.linux.kernel import procfs
from homenode.linux.kernel.errors import ProcessGone
from homenode.linux.kernel.identity import Pinned


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen(["sleep", "30"])


def test_a_pin_holds_while_the_process_lives_and_fails_once_it_exits():
    p = _sleeper()
    start = procfs.read_stat("/proc", p.pid).starttime
    with Pinned("/proc", p.pid, start) as pin:
        pin.check()
        p.kill()
        p.wait()                     # reaped: the PID is free for anyone
        with pytest.raises(ProcessGone):
            pin.check()


def test_a_pin_refuses_a_process_with_another_start_time():
    p = _sleeper()
    try:
        start = procfs.read_stat("/proc", p.pid).starttime
        with pytest.raises(ProcessGone, match="reused"):
            Pinned("/proc", p.pid, start - 1)
    finally:
        p.kill()
        p.wait()


def test_without_a_pidfd_the_start_time_is_re_read(tmp_path):
    """A fixture /proc (no pidfd for it): the check re-reads the start time."""
    (tmp_path / "77").mkdir()
    stat = tmp_path / "77" / "stat"
    line = "77 (x) S 1 77 77 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 {} 1 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0"
    stat.write_text(line.format(500))
    with Pinned(str(tmp_path), 77, 500) as pin:
        assert pin.fd is None
        pin.check()
        stat.write_text(line.format(900))           # PID 77 now someone else
        with pytest.raises(ProcessGone):
            pin.check()


@needs_root
def test_a_pin_taken_before_a_pid_reuse_never_accepts_the_new_process():
    a = _sleeper()
    pid = a.pid
    start = procfs.read_stat("/proc", pid).starttime
    pin = Pinned("/proc", pid, start)
    a.kill()
    a.wait()
    b = None
    last = Path("/proc/sys/kernel/ns_last_pid")
    for _ in range(50):
        last.write_text(str(pid - 1))
        b = _sleeper()
        if b.pid == pid:
            break
        b.kill()
        b.wait()
        b = None
    if b is None:
        pin.close()
        pytest.skip("could not get the same PID back")
    try:
        assert os.path.exists(f"/proc/{pid}")          # the PID lives again...
        with pytest.raises(ProcessGone):
            pin.check()                                 # ...but not our process
    finally:
        pin.close()
        b.kill()
        b.wait()
