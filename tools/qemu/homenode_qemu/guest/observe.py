"""What the tests measure inside the guest, read straight from the kernel.

Deliberately independent of homenode's own parsers: the judge should not share code with
the judged.  Readers are small and take a root path (default "/") like the project's own.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

PAGE = 4096
# /proc/vmstat counters kept per sample: migrations of any cause, and NUMA-hinting work.
VMSTAT_KEYS = ("pgmigrate_success", "pgmigrate_fail", "numa_pages_migrated",
               "numa_hint_faults", "numa_hint_faults_local", "numa_pte_updates")
_NODE = re.compile(r"^N(\d+)=(\d+)$")


def cpulist(text: str) -> list[int]:
    """``"0-2,5"`` -> [0, 1, 2, 5]."""
    out: list[int] = []
    for part in filter(None, text.strip().split(",")):
        a, _, b = part.partition("-")
        out += range(int(a), int(b or a) + 1)
    return out


def node_cpus(root: str = "/") -> dict[int, list[int]]:
    base = Path(root, "sys/devices/system/node")
    return {int(p.name[4:]): cpulist((p / "cpulist").read_text())
            for p in sorted(base.glob("node[0-9]*"))}


def node_distances(root: str = "/") -> dict[int, list[int]]:
    base = Path(root, "sys/devices/system/node")
    return {int(p.name[4:]): [int(x) for x in (p / "distance").read_text().split()]
            for p in sorted(base.glob("node[0-9]*"))}


def numa_maps(pid: int, addr: int | None = None, root: str = "/") -> tuple[dict[int, int],
                                                                          dict[int, int]]:
    """(pages per node of the mapping that starts at ``addr``, pages per node in total).

    Counts are in 4 KiB pages: numa_maps counts in units of ``kernelpagesize_kB``.
    """
    mine: dict[int, int] = {}
    total: dict[int, int] = {}
    for line in Path(root, f"proc/{pid}/numa_maps").read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        scale = 1
        for p in parts:
            if p.startswith("kernelpagesize_kB="):
                scale = int(p.split("=")[1]) * 1024 // PAGE
        start = int(parts[0], 16)
        for p in parts[1:]:
            m = _NODE.match(p)
            if m:
                n, c = int(m.group(1)), int(m.group(2)) * scale
                total[n] = total.get(n, 0) + c
                if addr is not None and start == addr:
                    mine[n] = mine.get(n, 0) + c
    return mine, total


def vmstat(root: str = "/") -> dict[str, int]:
    out = {}
    for line in Path(root, "proc/vmstat").read_text().splitlines():
        k, _, v = line.partition(" ")
        if k in VMSTAT_KEYS:
            out[k] = int(v)
    return out


def cpu_busy(root: str = "/") -> dict[int, int]:
    """Busy jiffies per CPU (everything but idle and iowait) from /proc/stat."""
    out = {}
    for line in Path(root, "proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            f = line.split()
            vals = [int(x) for x in f[1:]]
            out[int(f[0][3:])] = sum(vals[:8]) - vals[3] - vals[4]
    return out


@dataclass
class ProcStat:
    cpu: int            # the CPU it last ran on
    utime_s: float
    stime_s: float
    start_ticks: int


def proc_stat(pid: int, root: str = "/") -> ProcStat:
    text = Path(root, f"proc/{pid}/stat").read_text()
    f = text[text.rindex(")") + 2:].split()     # comm may hold spaces and parentheses
    hz = os.sysconf("SC_CLK_TCK")
    # fields after comm: state=0 ... utime=11 stime=12 ... starttime=19 ... processor=36
    return ProcStat(cpu=int(f[36]), utime_s=int(f[11]) / hz, stime_s=int(f[12]) / hz,
                    start_ticks=int(f[19]))


def tree_cpu_s(pid: int, root: str = "/") -> float:
    """CPU seconds of a process, its reaped children and its live descendants."""
    total = 0.0
    hz = os.sysconf("SC_CLK_TCK")
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            text = Path(root, f"proc/{p}/stat").read_text()
        except OSError:
            continue
        f = text[text.rindex(")") + 2:].split()
        total += sum(int(x) for x in f[11:15]) / hz     # utime stime cutime cstime
        for t in Path(root, f"proc/{p}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in t.read_text().split()]
    return total


@dataclass
class Sample:
    t: float
    workers: dict[int, dict] = field(default_factory=dict)   # pid -> {node pages, cpu, ...}
    busy: dict[int, int] = field(default_factory=dict)
    vm: dict[str, int] = field(default_factory=dict)
