"""Real-kernel tests on this one-node machine, against real child processes.

Where a test needs two nodes to see an effect, the host reads a fixture /sys that splits
this machine's two CPUs into two nodes (node 0 = CPU 0, node 1 = CPU 1, memoryless);
/proc and every system call are the real ones.  Only our own children are ever targets
(other engineers' processes run on this machine too).
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from linux_support import (
    HOMENODE,
    SYS_TWO,
    StepClock,
    child,
    needs_root,
    needs_two_cpus,
    thread_masks,
)

from homenode.linux import config, migrate
from homenode.linux.host import LinuxHost
from homenode.linux.kernel import numa_syscalls
from homenode.linux.kernel.errors import InvalidArgument, ProcessGone
from homenode.model import MigratePages, Reason, SetHome


def only(pid: int, extra: str = "") -> config.Config:
    return config.parse(f"[processes]\nauto = false\nvms = false\npids = [{pid}]\n{extra}")


def two_node_host(cfg: config.Config, clock: StepClock | None = None) -> LinuxHost:
    return LinuxHost(cfg, clock or StepClock(), proc_root="/proc", sys_root=SYS_TWO)


@needs_two_cpus
def test_home_sets_the_affinity_of_every_thread_and_restore_puts_it_back():
    with child(threads=6, cpus={0, 1}) as p:
        before = thread_masks(p.pid)
        assert len(before) == 7
        h = two_node_host(only(p.pid))
        snap = h.snapshot()
        assert [c.id for c in snap.clients] == [f"pid:{p.pid}"]
        r = h.apply([SetHome(f"pid:{p.pid}", -1, 1, Reason.INITIAL)])
        assert r[0].ok
        after = thread_masks(p.pid)
        assert set(after) == set(before)
        assert all(m == {1} for m in after.values())
        # the next tick keeps it managed (its mask is the one homenode set)
        h.clock.t = 1.0
        snap = h.snapshot()
        assert snap.clients[0].managed and snap.home[0] == 1
        clients, threads = h.restore()
        assert (clients, threads) == (1, 7)
        assert thread_masks(p.pid) == before


@needs_two_cpus
def test_someone_else_rebinding_makes_the_client_unmanaged():
    with child(threads=2, cpus={0, 1}) as p:
        h = two_node_host(only(p.pid))
        h.snapshot()
        h.apply([SetHome(f"pid:{p.pid}", -1, 1, Reason.INITIAL)])
        for tid in thread_masks(p.pid):
            os.sched_setaffinity(tid, {0})          # an operator pins it elsewhere
        assert h.restore() == (0, 0)                # never undone on exit
        # noticed within scan_interval (each tick re-checks a slice of the clients)
        for t in range(1, 6):
            h.clock.t = 2.0 * t
            snap = h.snapshot()
        assert not snap.clients[0].managed
        assert h.restore() == (0, 0)                # their pin is left alone
        assert all(m == {0} for m in thread_masks(p.pid).values())


@needs_two_cpus
def test_dry_run_changes_no_affinity():
    with child(threads=3, cpus={0, 1}) as p:
        before = thread_masks(p.pid)
        h = two_node_host(only(p.pid, "[daemon]\ndry_run = true"))
        h.snapshot()
        assert h.apply([SetHome(f"pid:{p.pid}", -1, 1, Reason.INITIAL)])[0].ok
        h.clock.t = 1.0
        h.snapshot()
        assert thread_masks(p.pid) == before


def test_move_pages_status_query():
    size = 64 * 4096
    buf = mmap.mmap(-1, size)
    buf.write(b"x" * size)                       # touch every page
    try:
        base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
        addrs = np.arange(base, base + size, 4096, dtype=np.uint64)
        status = numa_syscalls.move_pages(os.getpid(), addrs, None)
        assert status.tolist() == [0] * 64       # every page on node 0
        # a page never touched reports -ENOENT
        fresh = mmap.mmap(-1, 4096)
        with contextlib.ExitStack() as stack:
            stack.callback(fresh.close)
            ptr = ctypes.c_char.from_buffer(fresh)
            addr = ctypes.addressof(ptr)
            del ptr
            st = numa_syscalls.move_pages(os.getpid(), np.array([addr], np.uint64), None)
            assert st.tolist() == [-2]
    finally:
        del base
        buf.close()


def test_paced_move_of_a_child_to_node_0():
    with child(threads=1, mb=16) as p:
        r = migrate.move_paced("/proc", p.pid, 0, 0, budget=1000, cursor=0)
        # every page found on node 0 was "moved" to node 0: the budget bounds the batch
        assert 1000 <= r.moved < 1000 + 512 and r.failed == 0 and r.cursor > 0
        r2 = migrate.move_paced("/proc", p.pid, 0, 0, budget=1000, cursor=r.cursor)
        assert r2.moved >= 1000


def test_a_node_with_nothing_movable_is_not_rescanned_every_tick():
    with child(threads=1, mb=8) as p:
        h = two_node_host(only(p.pid))
        h.snapshot()
        c = next(iter(h.procs.values()))
        # "node 1 -> node 0": nothing of it is on (memoryless) node 1, a whole pass finds
        # nothing to move, and node 1 is then left alone for STUCK_BACKOFF_S
        r = h.apply([MigratePages(c.id, 1, 0, 1000)])[0]
        assert r.ok and r.moved == 0
        assert 1 in c.stuck and c.maps_stale
        assert h.apply([MigratePages(c.id, 1, 0, 1000)])[0].moved == 0


def test_migrate_pages_to_node_0():
    with child(threads=1, mb=16) as p:
        assert numa_syscalls.migrate_pages(p.pid, [0], [0]) == 0


def test_syscall_errors_become_exceptions():
    with child(threads=0, mb=1) as p:
        pid = p.pid
    with pytest.raises(ProcessGone):
        numa_syscalls.migrate_pages(pid, [0], [0])
    with pytest.raises(ProcessGone):
        numa_syscalls.sched_setaffinity(pid, {0})
    with pytest.raises(InvalidArgument):         # node 63 does not exist here
        numa_syscalls.migrate_pages(os.getpid(), [0], [63])


@needs_root
@needs_two_cpus
def test_a_reused_pid_is_never_touched():
    """A client's PID is freed and handed to a new process (via ns_last_pid): acting on
    the old client must leave the new process alone."""
    with child(threads=1, cpus={0, 1}) as a:
        h = two_node_host(only(a.pid))
        h.snapshot()
        pid = a.pid
        a.kill()
        a.wait()
    b = _spawn_with_pid(pid)
    if b is None:
        pytest.skip("could not get the same PID back (other processes forked first)")
    try:
        assert b.pid == pid
        r = h.apply([SetHome(f"pid:{pid}", -1, 1, Reason.INITIAL)])
        assert not r[0].ok
        assert all(m == {0, 1} for m in thread_masks(pid).values())
        h.clock.t = 1.0
        assert h.snapshot().clients == ()        # dropped, and not picked up again
    finally:
        b.kill()
        b.wait()


def _spawn_with_pid(pid: int, tries: int = 50) -> subprocess.Popen | None:
    last = Path("/proc/sys/kernel/ns_last_pid")
    for _ in range(tries):
        try:
            last.write_text(str(pid - 1))
        except OSError:
            return None
        p = subprocess.Popen(["sleep", "30"])
        if p.pid == pid:
            return p
        p.kill()
        p.wait()
    return None


# --- the command, end to end ------------------------------------------------------------------

def _write_config(tmp_path: Path, pid: int, extra: str = "") -> Path:
    path = tmp_path / "hn.toml"
    path.write_text(f"[daemon]\ninterval = '200ms'\nmanage_bound = true\n{extra}\n"
                    f"[processes]\nauto = false\nvms = false\npids = [{pid}]\n")
    return path


@needs_two_cpus
def test_cli_dry_run_once_changes_nothing(tmp_path: Path):
    # started on CPU 0 only; a real run would widen it to node 0's CPUs (0-1)
    with child(threads=3, cpus={0}) as p:
        before = thread_masks(p.pid)
        r = subprocess.run([*HOMENODE, "run", "--config", str(_write_config(tmp_path, p.pid)),
                            "--dry-run", "--once"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert re.search(rf"dry-run: home  client=\S+ id=pid:{p.pid} from=- to=0 "
                         r"reason=initial", r.stderr), r.stderr
        assert thread_masks(p.pid) == before


@needs_two_cpus
def test_cli_once_leaves_the_homes_it_set(tmp_path: Path):
    with child(threads=2, cpus={0}) as p:
        r = subprocess.run([*HOMENODE, "run", "--config", str(_write_config(tmp_path, p.pid)),
                            "--once"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert all(m == {0, 1} for m in thread_masks(p.pid).values())   # node 0's CPUs


@needs_two_cpus
def test_cli_sigterm_restores_affinity_and_exits_0(tmp_path: Path):
    with child(threads=3, cpus={0}) as p:
        before = thread_masks(p.pid)
        out = tmp_path / "out"
        d = subprocess.Popen([*HOMENODE, "run", "--config",
                              str(_write_config(tmp_path, p.pid)), "--out", str(out),
                              "--no-plots"], stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and thread_masks(p.pid) == before:
                time.sleep(0.05)
            assert all(m == {0, 1} for m in thread_masks(p.pid).values())
            d.send_signal(signal.SIGTERM)
            _, err = d.communicate(timeout=30)
        finally:
            if d.poll() is None:
                d.kill()
        assert d.returncode == 0, err
        assert "restored the CPU affinity of 4 threads (or cpusets) in 1 clients" in err
        assert thread_masks(p.pid) == before
        import json
        summary = json.loads((out / "summary.json").read_text())
        assert summary["linux"]["ticks"] >= 1 and summary["clients_seen"] == 1
        assert (out / "timeseries.csv").exists() and (out / "actions.csv").exists()


# --- privileges --------------------------------------------------------------------------------

def _setpriv_ok() -> bool:
    return os.geteuid() == 0 and subprocess.run(["setpriv", "--version"],
                                                capture_output=True).returncode == 0


needs_setpriv = pytest.mark.skipif(not _setpriv_ok(), reason="needs root and setpriv")


@contextlib.contextmanager
def _nobody_sleep():
    p = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          "sleep", "60"])
    try:
        time.sleep(0.3)
        yield p
    finally:
        p.kill()
        p.wait()


def _run_without(caps: str, cfg: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", f"--bounding-set={caps}", *HOMENODE, "run",
                           "--config", str(cfg), "--once", *args],
                          capture_output=True, text=True, timeout=60)


SYSTEM_PYTHON = Path("/usr/bin/python3")


def _system_python_matches() -> bool:
    """/usr/bin/python3 can run homenode from this checkout as another user (the venv's
    interpreter may live in a directory other users cannot enter)."""
    if not _setpriv_ok() or not SYSTEM_PYTHON.exists():
        return False
    r = subprocess.run([str(SYSTEM_PYTHON), "-c", "import sys; print(sys.version_info[:2])"],
                       capture_output=True, text=True)
    return r.stdout.strip() == str(tuple(sys.version_info[:2]))


@pytest.mark.skipif(not _system_python_matches(), reason="needs root, setpriv and a "
                    "/usr/bin/python3 of the venv's version")
def test_refuses_without_ptrace_access():
    """As user nobody, a root-owned target cannot be read (PTRACE_MODE_READ)."""
    import sysconfig
    import tempfile
    site = sysconfig.get_paths()["purelib"]
    src = str(Path(__file__).resolve().parents[2] / "src")
    with child(threads=1) as target, tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        cfg = _write_config(Path(tmp), target.pid)
        cfg.chmod(0o644)
        code = (f"import sys; sys.path[:0] = [{src!r}, {site!r}]; "
                "from homenode.cli import main; main()")
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            str(SYSTEM_PYTHON), "-c", code, "run", "--config", str(cfg),
                            "--once"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(
        f"homenode: error: no ptrace access to pid {target.pid} (")
    assert "Traceback" not in r.stderr


@needs_setpriv
def test_refuses_without_cap_sys_nice_unless_dry_run(tmp_path: Path):
    with _nobody_sleep() as target:
        cfg = _write_config(tmp_path, target.pid)
        r = _run_without("-sys_nice", cfg)
        dry = _run_without("-sys_nice", cfg, "--dry-run")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("homenode: error: missing CAP_SYS_NICE")
    assert dry.returncode == 0, dry.stderr
