"""What each policy's work costs in CPU on a real host: named host parameters, each with
its source (docs/baselines.md, "What every policy pays"), and the small pure functions
that price work -- the simulator charges with them, and a policy may call them (no I/O).

Who pays:

* the kernel's NUMA balancing (``autonuma``) runs in the faulting task's context: its
  page-table scans (task_numa_work, from task_work on return to user space), its hinting
  faults and the page copies done in the fault path are the client's own CPU time
  (system time), taken out of what it receives;
* a task move (any policy's home change) costs the moved client a cache refill;
* a user-space daemon (homenode, numad) pays its ticks and its /proc reads from the
  host's CPU; homenode's page copies (move_pages(2) from the daemon) and the simulator's
  other copies come out of the destination node's CPU, as before
  (``HostSpec.migration_cpu_per_gib``).

A policy reports its work as ``model.Work`` (kind, count, client); ``DAEMON`` says which
policies run as a user-space daemon and what that costs per second of run time.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from homenode.units import GIB, PAGE_SIZE


@dataclass(frozen=True)
class Costs:
    """CPU seconds per unit of work (host parameters, ``[host.costs]`` in a scenario)."""

    # autonuma: one NUMA hinting fault (trap, do_numa_page, task_numa_fault); a minor
    # fault's median on a Linux 6.6 x86 host (~1.0 us, rdtsc-timed)
    hint_fault: float = 1.0e-6
    # autonuma: one PTE made PROT_NONE by task_numa_work (change_prot_numa + TLB flush):
    # ~5 ms per 256 MB window measured with funclatency on a production host (DeepEP
    # #644), i.e. 5 ms / 65536 pages
    scan_page: float = 7.6e-8
    # any policy: one task move between nodes, the cache refill it causes; the kernel's
    # own estimate of a task's cache-hot cost (sysctl_sched_migration_cost = 0.5 ms)
    task_move: float = 5.0e-4
    # numad: one read of a process's /proc/PID/stat + numa_maps per cycle (estimate:
    # open/read/parse of two small files)
    proc_read: float = 1.0e-4
    # numad: numa_maps walks the process's page tables to count pages per node
    # (estimate: a read-only PTE walk, a quarter of a PROT_NONE scan's cost per page)
    numa_maps_page: float = 2.0e-8
    # homenode: the daemon's CPU per second of run time, bench/daemon_overhead.py: 7.1 ms
    # per 2 s tick with 277 processes, 20 of them clients (docs/linux.md)
    homenode_daemon: float = 3.55e-3


WORK_KINDS = ("hint_fault", "scan_page", "proc_read", "numa_maps_page")

# The user-space daemon each policy stands for: the Costs field charged per second of
# run time ("" = none: the kernel's own work is counted as Work, static places once,
# the oracle is not a real program).  Policies not named here are homenode's.
DAEMON = {"autonuma": "", "static": "", "oracle": "", "optimal": "", "numad": ""}
DEFAULT_DAEMON = "homenode_daemon"


def cost_fields() -> tuple[str, ...]:
    return tuple(f.name for f in fields(Costs))


def work_cpu(kind: str, count: float, costs: Costs) -> float:
    """CPU seconds that ``count`` units of work of ``kind`` cost."""
    return count * getattr(costs, kind)


def task_move_cpu(costs: Costs, moves: int = 1) -> float:
    """CPU seconds the moved client loses to the cache refill of ``moves`` moves."""
    return moves * costs.task_move


def copy_cpu(pages: float, migration_cpu_per_gib: float) -> float:
    """CPU seconds to copy and remap ``pages`` 4 KiB pages."""
    return pages * PAGE_SIZE / GIB * migration_cpu_per_gib


def daemon_cpu(policy: str, seconds: float, costs: Costs) -> float:
    """CPU seconds the daemon that ``policy`` stands for spends over ``seconds``."""
    kind = DAEMON.get(policy, DEFAULT_DAEMON)
    return seconds * getattr(costs, kind) if kind else 0.0


def autonuma_window_cpu(scanned_pages: float, costs: Costs) -> float:
    """One task_numa_work window: the PTEs made PROT_NONE and, since every scanned page
    of a running task is touched before the next scan (the autonuma model's
    assumption), as many hinting faults."""
    return scanned_pages * (costs.scan_page + costs.hint_fault)


def parse_costs(t) -> Costs:
    """``[host.costs]``: any field of ``Costs``, in CPU seconds per unit (``t`` is the
    scenario reader's Table)."""
    base = Costs()
    out = Costs(**{k: t.float(k, getattr(base, k), lo=0.0) for k in cost_fields()})
    t.done()
    return out
