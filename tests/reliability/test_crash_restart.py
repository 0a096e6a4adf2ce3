"""Crash and restart on this machine: the state file, adoption, and a real daemon killed
with SIGKILL and started again.

Real child processes and the real affinity calls; this machine's two CPUs are split into
two nodes by a fixture /sys (page migration needs a second real node: the QEMU test,
test_qemu_reliability.py, kills the daemon in the middle of one).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from linux_support import SYS_TWO, StepClock, child, needs_root, needs_two_cpus, thread_masks

from homenode.linux import config, state
from homenode.linux.host import LinuxHost
from homenode.linux.kernel import faults
from homenode.model import Reason, SetHome

ALL = frozenset({0, 1})
START_TIMEOUT_S = 60.0       # the daemon imports NumPy; the machine is shared
POLL_S = 0.05


def _cfg(pid: int, extra: str = "") -> config.Config:
    return config.parse(f"[processes]\nauto = false\nvms = false\npids = [{pid}]\n{extra}")


def _host(pid: int, path: Path | None, clock: StepClock | None = None) -> LinuxHost:
    st = state.StateFile(path) if path is not None else None
    return LinuxHost(_cfg(pid), clock or StepClock(), proc_root="/proc", sys_root=SYS_TWO,
                     state=st)


# --- the file ---------------------------------------------------------------------------------

def test_state_round_trip_and_atomic_write(tmp_path):
    f = state.StateFile(tmp_path / "d.json", boot="b1")
    saved = state.Saved({(5, 9): state.ProcRecord(5, 9, frozenset({1}), None, ALL, {6: ALL},
                                                  1, 1234.5)})
    assert f.save(saved) and not f.save(saved)          # unchanged: not written again
    assert f.writes == 1
    assert state.StateFile(tmp_path / "d.json", boot="b1").load() == saved
    assert not list(tmp_path.glob(".*tmp"))               # no temporary file left behind
    # another boot's file, a damaged one: ignored (with a warning), never an exception
    assert state.StateFile(tmp_path / "d.json", boot="b2").load() == state.Saved()
    (tmp_path / "d.json").write_text('{"version": 1, "boot_id": "b1", "procs": [{"pid"')
    assert state.StateFile(tmp_path / "d.json", boot="b1").load() == state.Saved()


def test_one_daemon_at_a_time(tmp_path):
    a, b = state.StateFile(tmp_path / "d.json"), state.StateFile(tmp_path / "d.json")
    assert a.lock() and not b.lock()
    a.unlock()
    assert b.lock()
    b.unlock()


def test_state_file_key_in_the_config():
    assert config.parse("").daemon.state_file == "auto"
    assert config.parse("[daemon]\nstate_file = 'off'").daemon.state_file == "off"
    assert config.parse("[daemon]\nstate_file = '/run/x.json'").daemon.state_file == "/run/x.json"


# --- adoption, in-process -------------------------------------------------------------------------

@needs_two_cpus
def test_a_restarted_host_adopts_the_home_a_killed_one_set(tmp_path):
    path = tmp_path / "daemon.json"
    with child(threads=3, cpus=set(ALL)) as p:
        before = thread_masks(p.pid)
        h1 = _host(p.pid, path)
        h1.snapshot()
        assert h1.apply([SetHome(f"pid:{p.pid}", -1, 1, Reason.INITIAL)])[0].ok
        assert all(m == {1} for m in thread_masks(p.pid).values())
        rec = json.loads(path.read_text())["procs"][0]
        assert (rec["pid"], rec["set_cpus"], rec["orig_mask"], rec["home"]) == \
            (p.pid, "1", "0-1", 1)
        del h1                                   # "killed": no restore, no last write
        h2 = _host(p.pid, path, StepClock(100.0))
        snap = h2.snapshot()
        c = snap.clients[0]
        assert c.managed and snap.home[0] == 1 and h2.stats.adopted == 1
        assert all(m == {1} for m in thread_masks(p.pid).values())   # nothing undone
        h2.clock.t = 101.0
        assert h2.snapshot().clients[0].managed    # its next look: still managed
        assert h2.restore() == (1, 4)             # and the true originals come back
        assert thread_masks(p.pid) == before
        assert json.loads(path.read_text())["procs"] == []


@needs_two_cpus
def test_without_a_state_file_the_home_looks_bound_by_someone_else(tmp_path):
    """The gap the state file closes (Linux backend, issue 4's known gap)."""
    with child(threads=2, cpus=set(ALL)) as p:
        h1 = _host(p.pid, None)
        h1.snapshot()
        h1.apply([SetHome(f"pid:{p.pid}", -1, 1, Reason.INITIAL)])
        h2 = _host(p.pid, None)
        assert not h2.snapshot().clients[0].managed
        assert h2.restore() == (0, 0)            # the originals are lost
        assert all(m == {1} for m in thread_masks(p.pid).values())


@needs_two_cpus
def test_re_bound_while_no_homenode_ran_is_left_alone(tmp_path):
    path = tmp_path / "daemon.json"
    with child(threads=2, cpus=set(ALL)) as p:
        h1 = _host(p.pid, path)
        h1.snapshot()
        h1.apply([SetHome(f"pid:{p.pid}", -1, 1, Reason.INITIAL)])
        for tid in thread_masks(p.pid):
            os.sched_setaffinity(tid, {0})                # an operator pins it meanwhile
        h2 = _host(p.pid, path)
        snap = h2.snapshot()
        assert not snap.clients[0].managed and h2.stats.adopted == 0
        assert h2.restore() == (0, 0)
        assert all(m == {0} for m in thread_masks(p.pid).values())


class Killed(BaseException):
    """Stands for SIGKILL in the middle of the calls: no handler, no put-back runs."""


@needs_two_cpus
def test_killed_in_the_middle_of_a_home_change_the_change_is_completed(tmp_path):
    """The write-ahead record names the new CPUs before the first call: a daemon killed
    after two of five threads moved is succeeded by one that finishes the move, and that
    still knows every thread's original mask."""
    path = tmp_path / "daemon.json"
    with child(threads=4, cpus=set(ALL)) as p:
        before = thread_masks(p.pid)
        h1 = _host(p.pid, path)
        h1.snapshot()
        calls = {"n": 0}

        def die_on_third(op: str, target: str) -> int:
            if (op, target) == ("syscall", "sched_setaffinity"):
                calls["n"] += 1
                if calls["n"] == 3:
                    raise Killed
            return 0

        with faults.injected(die_on_third), pytest.raises(Killed):
            h1.apply([SetHome(f"pid:{p.pid}", -1, 1, Reason.INITIAL)])
        masks = thread_masks(p.pid)
        assert sorted(map(sorted, masks.values())).count([1]) == 2     # half-way
        h2 = _host(p.pid, path)
        snap = h2.snapshot()
        assert snap.clients[0].managed and snap.home[0] == 1
        assert all(m == {1} for m in thread_masks(p.pid).values())     # completed
        h2.restore()
        assert thread_masks(p.pid) == before


@needs_two_cpus
@needs_root
def test_a_reused_pid_never_adopts_the_old_record(tmp_path):
    path = tmp_path / "daemon.json"
    with child(threads=1, cpus=set(ALL)) as a:
        h1 = _host(a.pid, path)
        h1.snapshot()
        h1.apply([SetHome(f"pid:{a.pid}", -1, 1, Reason.INITIAL)])
        pid = a.pid
        a.kill()
        a.wait()
    b = _spawn_with_pid(pid, cpus={1})         # same PID, on the CPU homenode used
    if b is None:
        pytest.skip("could not get the same PID back (other processes forked first)")
    try:
        h2 = _host(pid, path)
        h2.snapshot()
        assert h2.stats.adopted == 0
        assert h2.restore() == (0, 0)          # the new process is not "put back"
        assert set(os.sched_getaffinity(pid)) == {1}
    finally:
        b.kill()
        b.wait()


def _spawn_with_pid(pid: int, cpus: set[int], tries: int = 50) -> subprocess.Popen | None:
    last = Path("/proc/sys/kernel/ns_last_pid")
    for _ in range(tries):
        try:
            last.write_text(str(pid - 1))
        except OSError:
            return None
        p = subprocess.Popen(["sleep", "30"], preexec_fn=lambda: os.sched_setaffinity(0, cpus))
        if p.pid == pid:
            return p
        p.kill()
        p.wait()
    return None


# --- a real daemon, SIGKILLed ------------------------------------------------------------

RUNNER = textwrap.dedent("""
    import signal, sys, threading
    from pathlib import Path
    from homenode.linux import config, daemon
    from homenode.ops.logging import setup_logging
    setup_logging("text")
    stop = threading.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: stop.set())
    cfg = config.load(sys.argv[1])
    daemon.run(cfg, stop=stop, sys_root=sys.argv[2])
""")


def _daemon(cfg: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", RUNNER, str(cfg), str(SYS_TWO)],
                            stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)


def _wait(cond, what: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not cond():
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{what}: daemon rc {proc.poll()}\n{log.read_text()[-3000:]}")
        time.sleep(POLL_S)


@needs_two_cpus
@pytest.mark.slow
def test_sigkill_then_restart_adopts_and_restores_on_exit(tmp_path):
    """A real `daemon.run` homes a real child, is SIGKILLed, and a second one starts: it
    adopts the home (the child stays managed, its mask untouched), and on SIGTERM puts
    back the mask the child had before the *first* daemon changed it."""
    state_path = tmp_path / "daemon.json"
    log = tmp_path / "homenode.log"
    with child(threads=3, cpus=set(ALL)) as p:
        before = thread_masks(p.pid)
        cfg = tmp_path / "hn.toml"
        cfg.write_text(f"[daemon]\ninterval = '0.2s'\nscan_interval = '0.2s'\n"
                       f"state_file = '{state_path}'\n"
                       f"[processes]\nauto = false\nvms = false\npids = [{p.pid}]\n")
        first = _daemon(cfg, log)
        try:
            def homed() -> bool:
                masks = set(thread_masks(p.pid).values())
                return len(masks) == 1 and masks != {ALL}

            _wait(homed, "first daemon never homed the child", first, log)
            home = next(iter(thread_masks(p.pid).values()))
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        assert thread_masks(p.pid) == {t: home for t in before}     # nothing restored
        second = _daemon(cfg, log)
        try:
            _wait(lambda: "from the state file" in log.read_text(), "no adoption", second,
                  log)
            time.sleep(1.0)                                   # a few ticks of its own
            assert second.poll() is None
            assert all(m == home for m in thread_masks(p.pid).values())
        finally:
            second.send_signal(signal.SIGTERM)
            rc = second.wait(30)
        text = log.read_text()
        assert rc == 0, text[-3000:]
        assert "Traceback" not in text and "bound by someone else" not in text, text[-3000:]
        assert thread_masks(p.pid) == before, text[-3000:]
