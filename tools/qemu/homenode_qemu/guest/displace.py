"""Make a managed worker's memory remote on purpose, after homenode has homed it.

A worker whose memory is first-touched under a CPU or memory binding is, rightly, "bound
by someone else" to homenode if it sees it then.  To give homenode remote memory to move
without any binding, the test waits until homenode has homed the worker (its affinity is
exactly one node's CPUs), then moves every page of it to another node with
migrate_pages(2), as memory left behind by a move would be.
"""

from __future__ import annotations

import os
import time
from typing import Any

from homenode_qemu.guest import observe
from homenode_qemu.guest.syscalls_adapter import adapter

HOMED_TIMEOUT_S = 30.0
POLL_S = 0.05


def home_node(pid: int, node_cpus: dict[int, list[int]]) -> int | None:
    """The node whose CPUs are exactly the process's affinity, or None."""
    aff = set(os.sched_getaffinity(pid))
    for n, cpus in node_cpus.items():
        if aff == set(cpus):
            return n
    return None


def wait_homed(pid: int, node_cpus: dict[int, list[int]],
               timeout: float = HOMED_TIMEOUT_S) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = home_node(pid, node_cpus)
        if n is not None:
            return n
        time.sleep(POLL_S)
    return None


def wait_homed_local(pid: int, addr: int, node_cpus: dict[int, list[int]],
                     target: float = 0.95, timeout: float = HOMED_TIMEOUT_S) -> int:
    """Wait until the process is homed on a node holding ≥ ``target`` of its mapping."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = home_node(pid, node_cpus)
        if n is not None:
            mine, _ = observe.numa_maps(pid, addr)
            if mine.get(n, 0) >= target * max(1, sum(mine.values())):
                return n
        time.sleep(POLL_S * 4)
    raise TimeoutError(f"pid {pid} not homed with local memory after {timeout:.0f} s")


def displace(pid: int, addr: int, dst: int, nodes: list[int]) -> dict[str, Any]:
    """Move every page of ``pid`` to ``dst`` (migrate_pages from all other nodes)."""
    api = adapter()
    if not api.ok:
        raise RuntimeError(f"homenode.linux.kernel.numa_syscalls unavailable: {api.error}")
    t0 = time.monotonic()
    left = api.migrate(pid, [n for n in nodes if n != dst], [dst])
    mine, _ = observe.numa_maps(pid, addr)
    return {"pid": pid, "dst": dst, "not_moved": left, "s": round(time.monotonic() - t0, 3),
            "pages": {str(k): v for k, v in mine.items()}}
