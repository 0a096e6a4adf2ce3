"""Scenario "kernel": the raw kernel behaviour homenode relies on, seen on a real NUMA kernel.

* the topology the host asked for (nodes, CPUs, SLIT distances);
* first touch: a worker bound to node n's CPUs gets its memory on node n;
* the kernel's balancing is off unless asked for;
* homenode's own syscall module (``homenode.linux.kernel.numa_syscalls``), when it exists:
  move_pages(2) in query and move mode, migrate_pages(2) of a whole worker, while the worker
  keeps touching and checksumming its memory;
* homenode's own numa_maps reader, when it exists, against this observer's counts.

Every check is recorded as data; the host-side tests assert on it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from homenode_qemu.guest import observe, procs
from homenode_qemu.guest.syscalls_adapter import adapter

FIRST_TOUCH_MIB = 16
MIGRATE_MIB = 64
MOVE_SAMPLE_PAGES = 16


def run(params: dict[str, Any]) -> dict[str, Any]:
    binary = params["worker"]
    rundir = Path("/tmp/workers")
    cpus = observe.node_cpus()
    res: dict[str, Any] = {
        "node_cpus": {str(n): c for n, c in cpus.items()},
        "distance": {str(n): d for n, d in observe.node_distances().items()},
        "numa_balancing": Path("/proc/sys/kernel/numa_balancing").read_text().strip(),
        "cgroup_controllers": _read("/sys/fs/cgroup/cgroup.controllers").split(),
        "kernel": Path("/proc/sys/kernel/osrelease").read_text().strip(),
    }
    # 1. first touch on every node
    first = {}
    for n, node_cpus in cpus.items():
        w = procs.start(binary, FIRST_TOUCH_MIB, rundir=rundir, tag=f"ft{n}",
                        touch_cpus=node_cpus, run_cpus=node_cpus)
        mine, _ = observe.numa_maps(w.pid, w.addr)
        first[str(n)] = {"pages": {str(k): v for k, v in mine.items()},
                         "final": w.stop()}
    res["first_touch"] = first

    # 2. homenode's syscalls and numa_maps reader against a live worker
    api = adapter()
    res["numa_syscalls"] = api.describe()
    if api.ok:
        res["homenode_topology"] = api.read_topology()
    if api.ok and len(cpus) >= 2:
        res["syscalls"] = _syscalls(api, binary, rundir, sorted(cpus))
    return res


def _syscalls(api: Any, binary: str, rundir: Path, nodes: list[int]) -> dict[str, Any]:
    src, dst, last = nodes[0], nodes[1], nodes[-1]
    w = procs.start(binary, MIGRATE_MIB, rundir=rundir, tag="mig",
                    touch_cpus=observe.node_cpus()[src], run_cpus="all")
    out: dict[str, Any] = {"src": src, "dst": dst, "pages_total": MIGRATE_MIB * 256}
    before, _ = observe.numa_maps(w.pid, w.addr)
    out["before"] = {str(k): v for k, v in before.items()}
    stride = MIGRATE_MIB * 256 // MOVE_SAMPLE_PAGES
    addrs = [w.addr + i * stride * observe.PAGE for i in range(MOVE_SAMPLE_PAGES)]
    out["query_before"] = api.query(w.pid, addrs)
    out["move_result"] = api.move(w.pid, addrs, dst)
    out["query_after"] = api.query(w.pid, addrs)
    passes0 = (w.report() or {}).get("pages_done", 0)
    t0 = time.monotonic()
    out["migrate_result"] = api.migrate(w.pid, [src], [dst])
    out["migrate_s"] = round(time.monotonic() - t0, 3)
    after, total = observe.numa_maps(w.pid, w.addr)
    out["after"] = {str(k): v for k, v in after.items()}
    if last != dst:     # a second hop, to the far socket on 4 nodes
        out["hop_result"] = api.migrate(w.pid, [dst], [last])
        hop, total = observe.numa_maps(w.pid, w.addr)
        out["hop"] = {"dst": last, "pages": {str(k): v for k, v in hop.items()}}
    out["reader"] = api.read_numa_maps(w.pid)
    out["observer_total"] = {str(k): v for k, v in total.items()}
    time.sleep(0.5)     # let the worker run over migrated pages before it is stopped
    final = w.stop()
    out["worker"] = final
    out["worker_progress_pages"] = final.get("pages_done", 0) - passes0
    return out


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""
