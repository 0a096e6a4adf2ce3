"""Pure data shared by every layer: topology, clients, snapshots and actions.

Nodes are addressed by *index* (0..N-1) everywhere inside homenode; ``Topology.node_ids``
maps an index to the kernel's node id, which may be sparse (0, 2, 3, ...).  Per-client
and per-node quantities in a ``Snapshot`` are numpy vectors so that a policy can reason
about thousands of clients in a few milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from homenode.units import PAGE_SIZE

LOCAL_DISTANCE = 10


@dataclass(frozen=True, eq=False)
class Topology:
    """Nodes (CPUs, cores, memory) and the SLIT distance matrix."""

    node_ids: tuple[int, ...]
    cpus: tuple[tuple[int, ...], ...]
    cores: np.ndarray          # CPU capacity per node, in physical cores (float)
    mem_pages: np.ndarray      # memory capacity per node, in 4 KiB pages (int64)
    distance: np.ndarray       # (N, N) SLIT distances, 10 = local

    def __post_init__(self) -> None:
        n = len(self.node_ids)
        assert len(self.cpus) == n and self.cores.shape == (n,)
        assert self.mem_pages.shape == (n,) and self.distance.shape == (n, n)

    @property
    def n(self) -> int:
        return len(self.node_ids)

    def index(self, node_id: int) -> int:
        return self.node_ids.index(node_id)

    @classmethod
    def uniform(cls, nodes: int, cores_per_node: float, mem_bytes_per_node: int,
                threads_per_core: int = 1, distance: np.ndarray | None = None) -> Topology:
        """A host of identical nodes; CPU ids are numbered node by node."""
        per_node = round(cores_per_node * threads_per_core)
        cpus = tuple(tuple(range(i * per_node, (i + 1) * per_node)) for i in range(nodes))
        if distance is None:
            distance = np.full((nodes, nodes), 21, dtype=np.int64)
            np.fill_diagonal(distance, LOCAL_DISTANCE)
        return cls(tuple(range(nodes)), cpus,
                   np.full(nodes, float(cores_per_node)),
                   np.full(nodes, mem_bytes_per_node // PAGE_SIZE, dtype=np.int64),
                   np.asarray(distance, dtype=np.int64))


@dataclass(frozen=True)
class Client:
    """A NUMA client: a VM (or one vNUMA slice of it), a process or a cgroup.

    CPU quantities are in cores.  ``shares`` default to 1000 per vCPU (ESXi "normal").
    A client with manual CPU or memory affinity is *unmanaged*: the policy never moves
    it, but its load still counts on the nodes it is bound to.  ``allowed_nodes`` (like
    ESXi's numa.nodeAffinity) keeps it managed but only within that set.  ``vm`` names
    the VM a vNUMA slice belongs to ("" for a client that is a whole VM); slices of one
    VM are kept on close nodes.  Clients with the same ``affinity_group`` communicate and
    are drawn to one node (ESXi's action affinity).  ``prefer_ht`` sizes the client by
    hardware threads instead of cores (ESXi's numa.vcpu.preferHT).
    """

    id: str
    name: str = ""
    vcpus: int = 1
    mem_bytes: int = 0
    shares: int = 0
    reservation: float = 0.0
    limit: float = math.inf
    pool: str = ""
    cpu_affinity: frozenset[int] | None = None
    mem_affinity: frozenset[int] | None = None
    allowed_nodes: frozenset[int] | None = None
    vm: str = ""
    affinity_group: str = ""
    prefer_ht: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.id)
        if self.shares <= 0:
            object.__setattr__(self, "shares", 1000 * max(1, self.vcpus))

    @property
    def managed(self) -> bool:
        return self.cpu_affinity is None and self.mem_affinity is None

    @property
    def cpu_cap(self) -> float:
        """Most CPU the client can use: its vCPUs, or its limit if lower."""
        return min(float(self.vcpus), self.limit)

    @property
    def mem_pages(self) -> int:
        return -(-self.mem_bytes // PAGE_SIZE)


@dataclass(eq=False)
class Snapshot:
    """What a host looks like at one instant; the only input a policy gets.

    Vectors are indexed like ``clients``; ``home[i] == -1`` means client i has no home
    yet (it just arrived and waits for initial placement).
    """

    time: float
    topology: Topology
    clients: tuple[Client, ...]
    home: np.ndarray          # int64 node index per client, -1 = unplaced
    home_since: np.ndarray    # time of the client's last home change
    demand: np.ndarray        # CPU wanted, cores
    received: np.ndarray      # CPU received, cores
    pages: np.ndarray         # (C, N) resident pages per node
    free_pages: np.ndarray    # (N,) free pages per node
    pools: tuple[Pool, ...] = ()
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self._index:
            self._index.update((c.id, i) for i, c in enumerate(self.clients))

    def index_of(self, client_id: str) -> int:
        return self._index[client_id]

    @property
    def managed(self) -> np.ndarray:
        return self.vectors().managed

    def vectors(self) -> ClientArrays:
        """Per-client constants as vectors (cached per clients tuple)."""
        return client_arrays(self.clients, self.topology.n)

    def locality(self) -> np.ndarray:
        """Fraction of each client's resident pages on its home node (1.0 if none)."""
        total = self.pages.sum(axis=1)
        rows = np.arange(len(self.clients))
        local = np.where(self.home >= 0, self.pages[rows, np.maximum(self.home, 0)], 0)
        return np.where(total > 0, local / np.maximum(total, 1), 1.0)

    @classmethod
    def empty(cls, time: float, topology: Topology) -> Snapshot:
        n = topology.n
        return cls(time, topology, (), np.zeros(0, np.int64), np.zeros(0), np.zeros(0),
                   np.zeros(0), np.zeros((0, n), np.int64), topology.mem_pages.copy())


@dataclass(frozen=True)
class Pool:
    """A resource pool (ESXi pool, cgroup v2 cpu.weight subtree); CPU in cores."""

    name: str
    parent: str = ""
    shares: int = 1000
    reservation: float = 0.0
    limit: float = math.inf


@dataclass(frozen=True, eq=False)
class ClientArrays:
    cpu_cap: np.ndarray
    shares: np.ndarray
    reservation: np.ndarray
    managed: np.ndarray
    mem_pages: np.ndarray
    allowed: np.ndarray          # (C, N) bool: may client i live on node n
    vm: np.ndarray               # int: index of the client's VM group, -1 = none
    affinity: np.ndarray         # int: index of the client's affinity group, -1 = none


_ARRAYS_CACHE: dict[tuple[int, int], tuple[tuple[Client, ...], ClientArrays]] = {}


def client_arrays(clients: tuple[Client, ...], n_nodes: int) -> ClientArrays:
    """Vectors of the clients' constants; hosts that reuse one tuple pay once."""
    hit = _ARRAYS_CACHE.get((id(clients), n_nodes))
    if hit is not None and hit[0] is clients:
        return hit[1]
    n = len(clients)
    allowed = np.ones((n, n_nodes), bool)
    for i, c in enumerate(clients):
        if c.allowed_nodes:
            allowed[i] = False
            allowed[i, [k for k in sorted(c.allowed_nodes) if k < n_nodes]] = True
    arrays = ClientArrays(
        np.fromiter((c.cpu_cap for c in clients), float, n),
        np.fromiter((c.shares for c in clients), float, n),
        np.fromiter((c.reservation for c in clients), float, n),
        np.fromiter((c.managed for c in clients), bool, n),
        np.fromiter((c.mem_pages for c in clients), np.int64, n),
        allowed, group_index([c.vm for c in clients]),
        group_index([c.affinity_group for c in clients]))
    if len(_ARRAYS_CACHE) > 64:
        _ARRAYS_CACHE.clear()
    _ARRAYS_CACHE[(id(clients), n_nodes)] = (clients, arrays)
    return arrays


def group_index(names: list[str]) -> np.ndarray:
    """Small ints per distinct non-empty name (-1 for ""), in order of appearance."""
    seen: dict[str, int] = {}
    return np.array([seen.setdefault(x, len(seen)) if x else -1 for x in names], np.int64)


class Reason(StrEnum):
    """Why an action was taken; the counters of esxtop's NMIG column by kind."""

    INITIAL = "initial"        # initial placement of a new client
    BALANCE = "balance"        # balanceMig: move to cut CPU load imbalance
    LOCALITY = "locality"      # localityMig: move back toward the client's memory
    SWAP = "swap"              # loadSwap / localitySwap
    FAIRNESS = "fairness"      # longTermFairnessMig
    AFFINITY = "affinity"      # action-affinity (communicating clients)
    MEMORY = "memory"          # paced page migration after a home change
    NUMAD = "numad"            # baseline policies' own moves
    AUTONUMA = "autonuma"
    OPTIMAL = "optimal"


@dataclass(frozen=True)
class SetHome:
    """Make ``dst`` the client's home node: its vCPUs run there, new memory comes from it."""

    client: str
    src: int
    dst: int
    reason: Reason
    score: float = 0.0
    detail: str = ""


@dataclass(frozen=True)
class MigratePages:
    """Move up to ``pages`` of the client's 4 KiB pages from node ``src`` to ``dst``."""

    client: str
    src: int
    dst: int
    pages: int
    reason: Reason = Reason.MEMORY
    score: float = 0.0
    detail: str = ""


Action = SetHome | MigratePages


@dataclass
class ActionResult:
    """What happened to one action, on every host (the simulator and Linux alike).

    ``ok``: applied (or, dry run, would be).  ``moved``: the pages a MigratePages really
    moved, where the host counts them (Linux); None where the grant is moved whole (the
    simulator).  ``target``: what was acted on (Linux: PID@start time, or the cgroup).
    """

    action: Action
    ok: bool
    note: str = ""
    moved: int | None = None
    target: str = ""


@dataclass(frozen=True)
class Considered:
    """One alternative the policy looked at, with its score and why it was or wasn't taken."""

    client: str
    src: int
    dst: int
    reason: Reason
    score: float
    verdict: str              # "taken" or the rule that stopped it
    detail: str = ""          # the cost-benefit arithmetic, where it was worked out


@dataclass(frozen=True)
class Work:
    """Work a decision cost beyond its actions, counted, not priced (a host prices it:
    sim/costs.py): the kernel's page-table scans and hinting faults in a client's
    context, a daemon's reads of /proc.  ``client`` "" is the policy's own process."""

    kind: str                 # a key of sim/costs.py WORK_COST
    count: float
    client: str = ""


@dataclass
class Decision:
    """A policy's answer to one snapshot."""

    actions: list[Action] = field(default_factory=list)
    considered: list[Considered] = field(default_factory=list)
    work: list[Work] = field(default_factory=list)
