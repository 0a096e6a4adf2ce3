"""Topology from /sys/devices/system: nodes, their CPUs, cores, memory and distances.

Every reader takes the sysfs root (``/sys`` on a live host, a fixture tree in tests).
Node ids may be sparse (0, 2, 3); inside homenode nodes are addressed by index and
``Topology.node_ids`` maps back.  A node may have no memory (``MemTotal: 0 kB``) or no
CPUs (CXL, PMEM); CPUs and memory may come and go between ticks, so ``TopologyReader``
re-reads the cheap files every tick and rebuilds the ``Topology`` only when they change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from homenode.linux.kernel.errors import ParseError
from homenode.linux.kernel.files import list_optional, read_optional
from homenode.model import LOCAL_DISTANCE, Topology
from homenode.units import PAGE_SIZE

NODE_DIR = "devices/system/node"
CPU_DIR = "devices/system/cpu"
# Clean page cache is reclaimable, so numad (-C 1, its default) counts it as free.
COUNT_INACTIVE_FILE_AS_FREE = True

_MEMINFO_LINE = re.compile(rb"^Node\s+(\d+)\s+([A-Za-z_()]+):\s+(\d+)(?:\s+kB)?\s*$")


# --- parsers ---------------------------------------------------------------------------

def parse_cpulist(text: str) -> tuple[int, ...]:
    """``"0-3,8,10-11"`` -> (0, 1, 2, 3, 8, 10, 11); an empty list is ``()``."""
    out: set[int] = set()
    text = text.strip()
    if not text:
        return ()
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise ParseError(f"bad CPU/node list {text!r}") from None
        if a < 0 or b < a or b - a > 1 << 20:
            raise ParseError(f"bad range {part!r} in {text!r}")
        out.update(range(a, b + 1))
    return tuple(sorted(out))


def format_cpulist(ids: object) -> str:
    """The kernel's list format: ``(0, 1, 2, 5)`` -> ``"0-2,5"``; two in a row is ``a-b``
    (as numad and the kernel print them)."""
    xs = sorted(set(ids))  # type: ignore[call-overload]
    parts = []
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[j] + 1:
            j += 1
        parts.append(str(xs[i]) if i == j else f"{xs[i]}-{xs[j]}")
        i = j + 1
    return ",".join(parts)


def parse_node_meminfo(text: str) -> dict[str, int]:
    """``Node 0 MemTotal: 4024524 kB`` lines -> {"MemTotal": bytes, ...}.

    Fields without a unit (HugePages_Total, ...) are kept as plain counts."""
    out: dict[str, int] = {}
    for raw in text.encode().splitlines():
        if not raw.strip():
            continue
        m = _MEMINFO_LINE.match(raw)
        if m is None:
            raise ParseError(f"bad node meminfo line {raw[:80]!r}")
        value = int(m.group(3))
        out[m.group(2).decode()] = value * 1024 if raw.rstrip().endswith(b"kB") else value
    if "MemTotal" not in out:
        raise ParseError("node meminfo has no MemTotal")
    return out


def parse_distance(text: str) -> list[int]:
    """A SLIT row: ``"10 21 21"``."""
    try:
        row = [int(x) for x in text.split()]
    except ValueError:
        raise ParseError(f"bad distance row {text[:80]!r}") from None
    if not row or any(d <= 0 or d > 255 for d in row):
        raise ParseError(f"bad distance row {text[:80]!r}")
    return row


# --- readers ---------------------------------------------------------------------------

def node_path(sys_root: Path | str, node_id: int) -> Path:
    return Path(sys_root, NODE_DIR, f"node{node_id}")


def read_node_ids(sys_root: Path | str) -> tuple[int, ...]:
    """Online node ids, from ``node/online`` (or the ``nodeN`` directories without it)."""
    base = Path(sys_root, NODE_DIR)
    text = read_optional(base / "online")
    if text is not None:
        return parse_cpulist(text) or (0,)
    names = list_optional(base)
    if names is None:
        return (0,)      # a kernel without CONFIG_NUMA: one node
    ids = [int(n[4:]) for n in names if n.startswith("node") and n[4:].isdigit()]
    return tuple(sorted(ids)) or (0,)


def read_online_cpus(sys_root: Path | str) -> frozenset[int] | None:
    """The online CPUs; None when the kernel has no ``cpu/online``."""
    text = read_optional(Path(sys_root, CPU_DIR, "online"))
    return None if text is None else frozenset(parse_cpulist(text))


def read_isolated_cpus(sys_root: Path | str) -> frozenset[int]:
    text = read_optional(Path(sys_root, CPU_DIR, "isolated"))
    return frozenset() if text is None else frozenset(parse_cpulist(text))


def read_node_cpus(sys_root: Path | str, node_id: int) -> tuple[int, ...]:
    text = read_optional(node_path(sys_root, node_id) / "cpulist")
    return () if text is None else parse_cpulist(text)


def read_node_meminfo(sys_root: Path | str, node_id: int) -> dict[str, int]:
    text = read_optional(node_path(sys_root, node_id) / "meminfo")
    return {"MemTotal": 0, "MemFree": 0} if text is None else parse_node_meminfo(text)


def read_distances(sys_root: Path | str, node_ids: tuple[int, ...]) -> np.ndarray:
    """The (N, N) SLIT.  Each node's row lists every online node in id order; a missing
    or short row (a node going away mid-read) falls back to 10 local / 20 remote."""
    n = len(node_ids)
    dist = np.full((n, n), 2 * LOCAL_DISTANCE, np.int64)
    np.fill_diagonal(dist, LOCAL_DISTANCE)
    for i, nid in enumerate(node_ids):
        text = read_optional(node_path(sys_root, nid) / "distance")
        if text is None:
            continue
        row = parse_distance(text)
        if len(row) == n:
            dist[i] = row
    return dist


def read_core_count(sys_root: Path | str, cpus: tuple[int, ...]) -> float:
    """Physical cores among ``cpus``: distinct SMT sibling sets (each CPU counts as a core
    when its topology directory is missing)."""
    groups: set[tuple[int, ...]] = set()
    for cpu in cpus:
        topo = Path(sys_root, CPU_DIR, f"cpu{cpu}", "topology")
        sibs: tuple[int, ...] = (cpu,)
        for name in ("core_cpus_list", "thread_siblings_list"):
            text = read_optional(topo / name)
            if text is not None:
                sibs = parse_cpulist(text) or (cpu,)
                break
        groups.add(sibs)
    return float(len(groups))


# --- the per-tick reader -----------------------------------------------------------------

@dataclass(frozen=True)
class NodeState:
    """What one tick reads: the topology (same object while nothing changed) and free
    memory per node (4 KiB pages)."""

    topology: Topology
    free_pages: np.ndarray
    changed: bool


class TopologyReader:
    """Re-reads online nodes/CPUs, cpulists and meminfo each tick; builds a new
    ``Topology`` only when they change (distances and SMT siblings are read then)."""

    def __init__(self, sys_root: Path | str = "/sys"):
        self.sys_root = Path(sys_root)
        self._key: tuple | None = None
        self._topology: Topology | None = None

    def read(self) -> NodeState:
        root = self.sys_root
        node_ids = read_node_ids(root)
        online = read_online_cpus(root)
        cpus = []
        totals = []
        free = []
        for nid in node_ids:
            node_cpus = read_node_cpus(root, nid)
            if online is not None:
                node_cpus = tuple(c for c in node_cpus if c in online)
            cpus.append(node_cpus)
            info = read_node_meminfo(root, nid)
            totals.append(info.get("MemTotal", 0) // PAGE_SIZE)
            extra = info.get("Inactive(file)", 0) if COUNT_INACTIVE_FILE_AS_FREE else 0
            free.append((info.get("MemFree", 0) + extra) // PAGE_SIZE)
        key = (node_ids, tuple(cpus), tuple(totals))
        changed = key != self._key
        if changed or self._topology is None:
            # The key is kept only once the new Topology is built: a failed read of the
            # distances or SMT siblings is retried next tick, never left half-seen.
            self._topology = Topology(
                node_ids, tuple(cpus),
                np.array([read_core_count(root, c) for c in cpus], float),
                np.array(totals, np.int64), read_distances(root, node_ids))
            self._key = key
        free_arr = np.minimum(np.array(free, np.int64), self._topology.mem_pages)
        return NodeState(self._topology, free_arr, changed)


def read_topology(sys_root: Path | str = "/sys") -> Topology:
    return TopologyReader(sys_root).read().topology
