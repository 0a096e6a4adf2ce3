"""A real QEMU with a guest NUMA topology, on this machine's real /proc and kernel.

The VM (TCG, stopped with ``-S``: it runs no guest code) has two guest nodes of 32 MiB
with two vCPUs each; only ram-node1 is ``prealloc=on``, so only its mapping holds pages:
that checks the size-and-order rule (homenode.linux.guestmem) on the QEMU installed here.
Where a test needs two host nodes to see an effect, the host reads the fixture /sys that
splits this machine's two CPUs into nodes 0 and 1, as test_linux_real_kernel.py does.
Skipped without qemu-system-x86_64.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from linux_support import SYS_TWO, StepClock, needs_two_cpus, thread_masks

from homenode.linux import config
from homenode.linux.actions_io import KernelIo
from homenode.linux.host import LinuxHost
from homenode.linux.kernel import numa_syscalls
from homenode.linux.kinds import process
from homenode.model import Reason, SetHome

QEMU = shutil.which("qemu-system-x86_64")
pytestmark = pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 not installed")
STARTUP_LIMIT_S = 60.0      # QEMU creating its vCPU threads (a limit, not a measurement)
PAGES_32M = 32 << 20 >> 12


RAM_BACKENDS = ("memory-backend-ram,id=ram-node0,size=32M",
                "memory-backend-ram,id=ram-node1,size=32M,prealloc=on")


@contextmanager
def qemu_vm(backends: tuple[str, str] = RAM_BACKENDS) -> Iterator[subprocess.Popen]:
    argv = [str(QEMU), "-name", "guest=hn-vnuma,debug-threads=on", "-S", "-machine", "pc",
            "-accel", "tcg", "-nodefaults", "-no-user-config", "-display", "none",
            "-monitor", "none", "-serial", "none", "-m", "64M", "-smp", "4,sockets=2,cores=2",
            "-object", backends[0], "-numa", "node,nodeid=0,cpus=0-1,memdev=ram-node0",
            "-object", backends[1], "-numa", "node,nodeid=1,cpus=2-3,memdev=ram-node1"]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + STARTUP_LIMIT_S
        while vcpu_threads(p.pid) < 4:
            if p.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"QEMU did not start its vCPUs: {p.stderr.read() if p.stderr else ''}")
            time.sleep(0.05)
        yield p
    finally:
        p.kill()
        p.wait(10)


def vcpu_threads(pid: int) -> int:
    n = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            n += Path(f"/proc/{pid}/task/{t}/comm").read_text().startswith("CPU ")
        except OSError:
            continue
    return n


def names(pid: int) -> dict[int, str]:
    return {int(t): Path(f"/proc/{pid}/task/{t}/comm").read_text().strip()
            for t in os.listdir(f"/proc/{pid}/task")}


def host(pid: int, sys_root: object = "/sys", dry: bool = False) -> LinuxHost:
    # scan_interval = interval: the binding check runs every tick
    cfg = config.parse(f"[daemon]\ndry_run = {'true' if dry else 'false'}\n"
                       'scan_interval = "2s"\n'
                       f"[processes]\nauto = false\nvms = false\npids = [{pid}]\n")
    return LinuxHost(cfg, StepClock(), proc_root="/proc", sys_root=sys_root)  # type: ignore[arg-type]


def test_each_guest_node_is_a_client_with_its_threads_and_memory():
    with qemu_vm() as p:
        h = host(p.pid, dry=True)
        snap = h.snapshot()
        assert [c.id for c in snap.clients] == [f"pid:{p.pid}/0", f"pid:{p.pid}/1"]
        assert all(c.vm == f"pid:{p.pid}" and c.vcpus == 2 for c in snap.clients)
        # only ram-node1 was preallocated: its pages, and only its, are slice 1's
        assert snap.pages.sum(axis=1).tolist() == [0, PAGES_32M]
        comm = names(p.pid)
        for c in h.procs.values():
            want = {0: ["CPU 0/TCG", "CPU 1/TCG"], 1: ["CPU 2/TCG", "CPU 3/TCG"]}
            assert [comm[t] for t in c.tids] == want[c.guest_node.id]  # type: ignore[attr-defined]


def test_file_and_memfd_backends(tmp_path: Path):
    # a file backend in a directory (qemu_back_mem.ram-node0.XXXXXX, found by name; its
    # pages are page cache, with no anon= in numa_maps) and a memfd backend
    backends = (f"memory-backend-file,id=ram-node0,size=32M,mem-path={tmp_path},"
                "share=on,prealloc=on", "memory-backend-memfd,id=ram-node1,size=32M")
    with qemu_vm(backends) as p:
        snap = host(p.pid, dry=True).snapshot()
        assert [c.id for c in snap.clients] == [f"pid:{p.pid}/0", f"pid:{p.pid}/1"]
        assert snap.pages.sum(axis=1).tolist() == [PAGES_32M, 0]


def test_a_page_pass_over_a_slice_scans_only_its_backend():
    with qemu_vm() as p:
        h = host(p.pid, dry=True)
        h.snapshot()
        by_node = {c.guest_node.id: c for c in h.procs.values()}  # type: ignore[attr-defined]
        # node 0 -> node 0 (the only node here): move_pages examines every address of
        # the slice's backend and reports pages already on node 0 as there.
        io = KernelIo("/proc", numa_syscalls)
        r0 = process.migrate_process(by_node[0], 0, 0, 1 << 30, 0.0, False, io)
        r1 = process.migrate_process(by_node[1], 0, 0, 1 << 30, 0.0, False, io)
        assert (r0.scanned, r0.moved) == (PAGES_32M, 0)        # nothing touched there
        assert (r1.scanned, r1.moved) == (PAGES_32M, PAGES_32M)
        assert r0.error is None and r1.error is None


@needs_two_cpus
def test_a_home_moves_only_the_slices_vcpu_threads_and_restore_puts_them_back():
    with qemu_vm() as p:
        before = thread_masks(p.pid)
        h = host(p.pid, SYS_TWO)
        h.snapshot()
        r = h.apply([SetHome(f"pid:{p.pid}/1", -1, 1, Reason.INITIAL),
                     SetHome(f"pid:{p.pid}/0", -1, 0, Reason.INITIAL)])
        assert all(x.ok for x in r), [x.note for x in r]
        comm = names(p.pid)
        after = thread_masks(p.pid)
        for tid, mask in after.items():
            if comm[tid] in ("CPU 2/TCG", "CPU 3/TCG"):
                assert mask == {1}
            elif comm[tid] in ("CPU 0/TCG", "CPU 1/TCG"):
                assert mask == {0}
            else:                           # QEMU's main and worker threads: untouched
                assert mask == before[tid]
        # a second tick keeps them there and does not count them as bound by others
        snap = h.snapshot()
        assert all(c.managed for c in snap.clients)
        assert h.restore() == (2, 4)
        assert thread_masks(p.pid) == before
