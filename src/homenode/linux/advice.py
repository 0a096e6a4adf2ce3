"""``homenode place``: the home node(s) for a VM about to start.

The answer is the policy's initial placement, on a snapshot of the host made of its
current CPU load per node (sampled from /proc/stat), its free memory, and the
recommendations made in the last ``window`` seconds -- kept in a small state file under
an exclusive ``flock`` so that parallel calls (libvirt starting several VMs at once)
see each other.  numad's ``-w`` looks at free resources only, so a burst of starts is
told to use the same node: the VMs have not touched their memory yet.

A VM too wide for one node is sized into vNUMA slices exactly as the daemon's policy
sizes it (``homenode.vnuma.slices_needed`` and ``split``: vCPUs over a node's cores,
memory over ``MEMORY_FILL`` of a node's memory), and the slices are placed as a set by
the policy's own initial placement (``policy/placement.py``), on close nodes: the advice
is where the daemon would put them, and each slice's node and size are the guest NUMA
topology to give the VM.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from homenode.errors import HomenodeError, InputError
from homenode.linux.kernel.errors import ParseError
from homenode.linux.kernel.procfs import read_proc_stat
from homenode.linux.kernel.sysfs import format_cpulist
from homenode.model import Client, Reason, SetHome, Snapshot, Topology
from homenode.policy import make_policy
from homenode.settings import Settings
from homenode.units import PAGE_SIZE
from homenode.vnuma import slices_needed, split

DEFAULT_WINDOW = 120.0   # s: a recommendation counts against its nodes this long
DEFAULT_SAMPLE = 0.5     # s of /proc/stat between the two CPU samples
NEW_ID = "new-vm"


@dataclass(frozen=True)
class Recommendation:
    time: float          # wall clock (time.time()): shared between processes
    vcpus: int
    mem_bytes: int
    nodes: tuple[int, ...]   # kernel node ids


@dataclass(frozen=True)
class SlicePlan:
    """One vNUMA slice of the new VM: the guest node to give it, and where it goes."""

    node: int                # kernel node id
    vcpus: int
    mem_bytes: int


@dataclass(frozen=True)
class Advice:
    nodes: tuple[int, ...]   # kernel node ids, primary (slice 0's) first
    score: float
    detail: str
    slices: tuple[SlicePlan, ...] = ()
    problems: tuple[str, ...] = ()   # why the VM does not fit where it would go; () = fits

    @property
    def nodeset(self) -> str:
        return format_cpulist(self.nodes)

    @property
    def fits(self) -> bool:
        return not self.problems


def format_size(n: float) -> str:
    """Bytes as GiB (from 1 GiB) or MiB, for people."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def fit_problems(topo: Topology, free_pages: np.ndarray, slices: tuple[SlicePlan, ...]
                 ) -> tuple[str, ...]:
    """What makes the placed VM not fit: a node given more vCPUs than it has CPUs, or more
    memory than it has free (after the recent recommendations)."""
    index = {nid: i for i, nid in enumerate(topo.node_ids)}
    out = []
    for nid in dict.fromkeys(s.node for s in slices):
        i = index[nid]
        vcpus = sum(s.vcpus for s in slices if s.node == nid)
        mem = sum(s.mem_bytes for s in slices if s.node == nid)
        cpus = len(topo.cpus[i])
        free = int(free_pages[i]) * PAGE_SIZE
        if vcpus > cpus:
            out.append(f"{vcpus} vCPUs on node {nid}, which has {cpus} CPUs")
        if mem > free:
            out.append(f"{format_size(mem)} on node {nid}, which has {format_size(free)} free")
    return tuple(out)


# --- CPU load -----------------------------------------------------------------------------

def busy_cores(topo: Topology, proc: str = "/proc", sample: float = DEFAULT_SAMPLE
               ) -> np.ndarray:
    """Busy CPUs per node over ``sample`` seconds (0 when sample is 0)."""
    if sample <= 0:
        return np.zeros(topo.n)
    try:
        a = read_proc_stat(proc)
        time.sleep(sample)
        b = read_proc_stat(proc)
    except ParseError as e:           # a kernel we do not understand: say so, in one line
        raise HomenodeError(str(e)) from None
    out = np.zeros(topo.n)
    for i, cpus in enumerate(topo.cpus):
        for c in cpus:
            if c in a and c in b and b[c][1] > a[c][1]:
                out[i] += (b[c][0] - a[c][0]) / (b[c][1] - a[c][1])
    return out


# --- the state file -----------------------------------------------------------------------

def default_state_path() -> Path:
    env = os.environ.get("HOMENODE_STATE_DIR")
    if env:
        return Path(env) / "place.json"
    if os.geteuid() == 0:
        return Path("/run/homenode/place.json")
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/homenode-{os.getuid()}"
    return Path(runtime) / "homenode" / "place.json"


@contextmanager
def locked_state(path: Path, window: float, now: float) -> Iterator[list[Recommendation]]:
    """The recent recommendations (older ones dropped), under an exclusive lock; the
    list as left by the caller is written back."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        raise InputError("--state", str(path), f"cannot open the state file: {e.strerror}") \
            from None
    with os.fdopen(fd, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            raw = json.loads(f.read() or "[]")
            recent = [Recommendation(r["time"], r["vcpus"], r["mem_bytes"], tuple(r["nodes"]))
                      for r in raw]
        except (ValueError, KeyError, TypeError):
            recent = []            # a damaged state file only forgets recent advice
        recent = [r for r in recent if now - window <= r.time <= now + 1.0]
        yield recent
        f.seek(0)
        f.truncate()
        f.write(json.dumps([asdict(r) for r in recent]))


# --- the recommendation -------------------------------------------------------------------

def new_vm(topo: Topology, vcpus: int, mem_bytes: int, prefer_ht: bool = False,
           max_vcpus_per_node: int = 0) -> list[Client]:
    """The new VM as the policy would see it: one client, or its vNUMA slices."""
    vm = Client(NEW_ID, vcpus=vcpus, mem_bytes=mem_bytes, prefer_ht=prefer_ht)
    return split(vm, slices_needed(vcpus, mem_bytes, topo, prefer_ht, max_vcpus_per_node))


def snapshot_for(topo: Topology, free_pages: np.ndarray, busy: np.ndarray,
                 recent: list[Recommendation], vcpus: int, mem_bytes: int,
                 prefer_ht: bool = False, max_vcpus_per_node: int = 0) -> Snapshot:
    """The host as the policy sees it: each node's current load and each recent
    recommendation as an unmanaged client bound there, the new VM (or its slices)
    unplaced."""
    index = {nid: i for i, nid in enumerate(topo.node_ids)}
    clients, home, demand = [], [], []
    free = free_pages.astype(np.int64).copy()
    for i in range(topo.n):
        if busy[i] > 0:
            clients.append(Client(f"load:{topo.node_ids[i]}", vcpus=max(1, math.ceil(busy[i])),
                                  cpu_affinity=frozenset({i})))
            home.append(i)
            demand.append(float(busy[i]))
    for k, r in enumerate(recent):
        idx = [index[n] for n in r.nodes if n in index]
        for i in idx:
            share = r.vcpus / len(idx)
            clients.append(Client(f"recent:{k}:{i}", vcpus=max(1, math.ceil(share)),
                                  cpu_affinity=frozenset({i})))
            home.append(i)
            demand.append(share)
            free[i] -= r.mem_bytes // PAGE_SIZE // len(idx)
    for piece in new_vm(topo, vcpus, mem_bytes, prefer_ht, max_vcpus_per_node):
        clients.append(piece)
        home.append(-1)
        demand.append(0.0)
    n = len(clients)
    return Snapshot(0.0, topo, tuple(clients), np.array(home, np.int64), np.zeros(n),
                    np.array(demand), np.array(demand), np.zeros((n, topo.n), np.int64),
                    np.maximum(free, 0))


def recommend(topo: Topology, free_pages: np.ndarray, busy: np.ndarray,
              recent: list[Recommendation], vcpus: int, mem_bytes: int,
              policy: str = "esxi", settings: Settings | None = None,
              prefer_ht: bool = False, max_vcpus_per_node: int = 0) -> Advice:
    snap = snapshot_for(topo, free_pages, busy, recent, vcpus, mem_bytes, prefer_ht,
                        max_vcpus_per_node)
    decision = make_policy(policy, settings).decide(snap)
    pieces = [c for c in snap.clients if c.id == NEW_ID or c.vm == NEW_ID]
    picks = {a.client: a for a in decision.actions if isinstance(a, SetHome)
             and a.reason is Reason.INITIAL}
    if any(c.id not in picks for c in pieces):
        raise InputError("--vcpus", vcpus, f"policy {policy} placed no node for this VM")
    slices = tuple(SlicePlan(topo.node_ids[picks[c.id].dst], c.vcpus, c.mem_bytes)
                   for c in pieces)
    nodes = tuple(dict.fromkeys(s.node for s in slices))       # slice order, no repeats
    first = picks[pieces[0].id]
    detail = first.detail if len(pieces) == 1 else (
        f"{len(pieces)} vNUMA slices: " + ", ".join(
            f"{s.vcpus} vCPUs + {format_size(s.mem_bytes)} on node {s.node}"
            for s in slices))
    return Advice(nodes, first.score, detail, slices,
                  fit_problems(topo, snap.free_pages, slices))
