"""From the guest's samples to the figures the tests assert and the bench tables print.

Pure functions over plain data (the JSON the guest returns), so they are unit-tested on the
host with hand-made samples.  A sample is::

    {"t": seconds since the scenario's t0,
     "w": {"<pid>": {"cpu": last CPU it ran on, "pages": {"<node>": 4 KiB pages of its
                    main mapping}, "tag": str}},
     "busy": {"<cpu>": busy jiffies since boot},
     "vm": {"pgmigrate_success": ..., ...}}

A worker is *local* to the node of the CPU it last ran on; its locality is the fraction of
its main mapping's pages on that node.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

LOCAL_TARGET = 0.95     # issue 8: "≥ 95 % local memory"
HOLD_S = 2.0            # locality must hold this long to count as reached (not a flicker)
BALANCE_WINDOW_S = 5.0  # node CPU balance is measured over the run's last seconds
CLK_TCK = 100           # USER_HZ of /proc/stat on Linux x86_64

Sample = Mapping[str, Any]


def cpu_to_node(node_cpus: Mapping[str, Sequence[int]]) -> dict[int, int]:
    return {int(c): int(n) for n, cpus in node_cpus.items() for c in cpus}


def locality(worker: Mapping[str, Any], cpu_node: Mapping[int, int]) -> float:
    """Fraction of the worker's pages on the node it runs on (0 when it has none)."""
    pages = {int(n): int(c) for n, c in worker["pages"].items()}
    total = sum(pages.values())
    return pages.get(cpu_node[int(worker["cpu"])], 0) / total if total else 0.0


def localities(sample: Sample, cpu_node: Mapping[int, int],
               tags: Sequence[str] | None = None) -> dict[str, float]:
    return {pid: locality(w, cpu_node) for pid, w in sample["w"].items()
            if tags is None or w.get("tag") in tags}


def time_to_local(samples: Sequence[Sample], cpu_node: Mapping[int, int], *,
                  target: float = LOCAL_TARGET, hold_s: float = HOLD_S,
                  tags: Sequence[str] | None = None,
                  balanced_nodes: int | None = None,
                  workers: Collection[str] | None = None) -> float | None:
    """First t at which every (tagged) worker is ≥ ``target`` local and stays so for
    ``hold_s`` (the run must go on that long after it); None if never.  With
    ``balanced_nodes`` N, the workers must also be spread over the N nodes (the counts per
    node differ by at most one).  With ``workers`` (pids), only samples that hold all of
    them count: workers that arrive later (the mixed workload's) must be local too."""
    want = set(workers or ())

    def good(s: Sample) -> bool:
        ls = localities(s, cpu_node, tags)
        if not ls or min(ls.values()) < target or not want <= ls.keys():
            return False
        if balanced_nodes:
            per = workers_per_node(s, cpu_node, balanced_nodes, tags)
            return max(per) - min(per) <= 1
        return True

    ok = [good(s) for s in samples]
    for i, good in enumerate(ok):
        if not good:
            continue
        t0 = samples[i]["t"]
        j = i
        while j < len(samples) and samples[j]["t"] < t0 + hold_s:
            if not ok[j]:
                break
            j += 1
        else:
            if j < len(samples):     # the run went on past the hold, still local
                return float(t0)
    return None


def tagged(sample: Sample, tags: Sequence[str] | None = None) -> set[str]:
    """The pids of the (tagged) workers in a sample."""
    return {pid for pid, w in sample["w"].items() if tags is None or w.get("tag") in tags}


def final_local(samples: Sequence[Sample], cpu_node: Mapping[int, int],
                tags: Sequence[str] | None = None) -> float | None:
    """The least local worker's locality at the last sample (None without samples)."""
    if not samples:
        return None
    ls = localities(samples[-1], cpu_node, tags)
    return min(ls.values()) if ls else None


def workers_per_node(sample: Sample, cpu_node: Mapping[int, int], nodes: int,
                     tags: Sequence[str] | None = None) -> list[int]:
    out = [0] * nodes
    for w in sample["w"].values():
        if tags is None or w.get("tag") in tags:
            out[cpu_node[int(w["cpu"])]] += 1
    return out


def node_busy(samples: Sequence[Sample], node_cpus: Mapping[str, Sequence[int]],
              window_s: float = BALANCE_WINDOW_S) -> list[float] | None:
    """Busy fraction of each node's CPUs over the last ``window_s`` of the run."""
    if len(samples) < 2:
        return None
    last = samples[-1]
    first = next((s for s in samples if s["t"] >= last["t"] - window_s), samples[0])
    if first is last:
        first = samples[-2]
    dt = last["t"] - first["t"]
    out = []
    for n in sorted(node_cpus, key=int):
        cpus = [str(c) for c in node_cpus[n]]
        jiffies = sum(last["busy"][c] - first["busy"][c] for c in cpus)
        out.append(round(min(1.0, jiffies / (CLK_TCK * dt * len(cpus))), 3) if dt > 0 else 0.0)
    return out


def imbalance(busy: Sequence[float] | None) -> float | None:
    """max - min of the nodes' busy fractions (0 = perfectly balanced)."""
    return round(max(busy) - min(busy), 3) if busy else None


def vm_delta(samples: Sequence[Sample], key: str) -> int:
    if not samples:
        return 0
    return int(samples[-1]["vm"].get(key, 0) - samples[0]["vm"].get(key, 0))


def migration_rate(samples: Sequence[Sample], pid: str, node: int, *,
                   lo: float = 0.1, hi: float = 0.8) -> float | None:
    """Pages/s arriving on ``node`` for one worker, fitted (least squares) over the samples
    where between ``lo`` and ``hi`` of its pages are there: the steady middle of a paced
    migration, without the start-up delay or the slow tail."""
    pts = []
    for s in samples:
        w = s["w"].get(pid)
        if not w:
            continue
        pages = {int(n): int(c) for n, c in w["pages"].items()}
        total = sum(pages.values())
        if total and lo <= pages.get(node, 0) / total <= hi:
            pts.append((float(s["t"]), float(pages.get(node, 0))))
    if len(pts) < 3:
        return None
    mt = sum(t for t, _ in pts) / len(pts)
    mp = sum(p for _, p in pts) / len(pts)
    var = sum((t - mt) ** 2 for t, _ in pts)
    return sum((t - mt) * (p - mp) for t, p in pts) / var if var > 0 else None


def pages_to_move(samples: Sequence[Sample], cpu_node: Mapping[int, int],
                  tags: Sequence[str] | None = None) -> int:
    """Pages that had to move for the placement the run ended with: for each worker, its
    pages (when first sampled) that were not on the node it ran on at its last sample."""
    first: dict[str, Mapping[str, Any]] = {}
    last: dict[str, Mapping[str, Any]] = {}
    for s in samples:
        for pid, w in s["w"].items():
            if tags is None or w.get("tag") in tags:
                first.setdefault(pid, w)
                last[pid] = w
    total = 0
    for pid, w in first.items():
        pages = {int(n): int(c) for n, c in w["pages"].items()}
        total += sum(pages.values()) - pages.get(cpu_node[int(last[pid]["cpu"])], 0)
    return total
