"""Scenario files (TOML): a simulated host, its clients and timed events.

See the README's "Scenario format" section for the full reference.  Every field is
checked here; a bad file gives one ``InputError`` naming the file, the field and the
value, and nothing is run.
"""

from __future__ import annotations

import fnmatch
import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from homenode.errors import InputError
from homenode.model import Client, Pool, Topology
from homenode.sim.costs import Costs, parse_costs
from homenode.sim.demand import KINDS, Curve
from homenode.sim.profiles import PROFILES, HostMemory, parse_profile
from homenode.sim.traces import trace_clients
from homenode.units import GIB, PAGE_SIZE, parse_duration, parse_size
from homenode.vnuma import slices_needed, split

DEFAULT_SCENARIO = "burst"
EVENT_MERGE = 2.0   # s: workload changes closer than this count as one event


@dataclass(frozen=True)
class HostSpec:
    topology: Topology
    migration_bandwidth: int = GIB        # bytes/s per node, in and out each
    migration_cpu_per_gib: float = 0.25   # core-seconds to copy and remap one GiB
    remote_latency: float = 1.6           # latency ratio at SLIT distance 21
    tick: float = 0.1                     # s per CPU-model step
    costs: Costs = field(default_factory=Costs)   # what work costs (sim/costs.py)
    memory: HostMemory = field(default_factory=HostMemory)   # profile (sim/profiles.py)

    def latency_ratio(self) -> np.ndarray:
        """(N, N) memory latency relative to local: the profile's, or linear in SLIT
        distance through ``remote_latency`` at 21 without one."""
        d = self.topology.distance.astype(float)
        if self.memory.profile:
            return PROFILES[self.memory.profile].latency(d)
        return 1.0 + (d - 10.0) * (self.remote_latency - 1.0) / 11.0


@dataclass(frozen=True)
class ClientSpec:
    client: Client
    curve: Curve
    start: float = 0.0
    stop: float = math.inf
    mem_intensity: float = 0.5
    touch_rate: int = 2 * GIB             # bytes/s a starting client first-touches
    comm_intensity: float = 0.0           # share of work spent talking to its group
    start_home: int | None = None         # already homed there when it starts
    memory_on: int | None = None          # its memory already sits there when it starts


@dataclass(frozen=True)
class Event:
    """A demand change at ``at`` for the named clients, or -- with ``on_node`` -- for
    every client whose home is that node when the event fires."""

    at: float
    clients: tuple[str, ...]
    curve: Curve
    on_node: int | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    duration: float
    seed: int
    host: HostSpec
    clients: tuple[ClientSpec, ...]
    events: tuple[Event, ...]
    pools: tuple[Pool, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    expect: dict[str, float] = field(default_factory=dict)
    source: str = ""

    def event_times(self) -> list[float]:
        """Times at which the workload changes: starts, stops and demand events."""
        times = {c.start for c in self.clients}
        times |= {c.stop for c in self.clients if c.stop < self.duration}
        times |= {e.at for e in self.events}
        merged: list[float] = []
        for t in sorted(t for t in times if t < self.duration):
            # A burst of starts is one event: it converges as a whole.
            if not merged or t - merged[-1] > EVENT_MERGE:
                merged.append(t)
        return merged


# --- loading ----------------------------------------------------------------------------

def builtin_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("homenode.sim.scenarios").iterdir()
                  if p.name.endswith(".toml"))


def load(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a TOML file by path."""
    if name_or_path in builtin_names():
        ref = resources.files("homenode.sim.scenarios").joinpath(f"{name_or_path}.toml")
        return parse(ref.read_text(), f"{name_or_path}.toml")
    path = Path(name_or_path)
    if not path.is_file():
        raise InputError("scenario", name_or_path,
                         f"no such file or built-in scenario ({', '.join(builtin_names())})")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError("scenario", name_or_path, f"cannot read: {e}") from None
    return parse(text, str(path))


def parse(text: str, where: str) -> Scenario:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError("toml", where, f"not valid TOML: {e}") from None
    t = Table(doc, "", where)
    seed = t.int("seed", 1, lo=0)
    rng = np.random.default_rng(seed)
    host = parse_host(t.sub("host"))
    duration = t.duration("duration", 300.0)
    if duration <= 0:
        raise InputError("duration", doc.get("duration"), "must be positive", where)
    pools = parse_pools(t)
    clients = parse_clients(t, host, rng, {p.name for p in pools})
    # [[traces]]: clients whose demand (and memory) comes from real trace files.
    clients += trace_clients(t, duration, {c.client.id for c in clients})
    ids = [c.client.id for c in clients]
    events = tuple(parse_event(e, ids, host.topology.n) for e in t.list("events"))
    settings = t.raw("settings", {})
    if not isinstance(settings, dict):
        raise InputError("settings", settings, "must be a table", where)
    expect_t = t.sub("expect")
    expect = {k: expect_t.float(k, 0.0) for k in list(expect_t.data)}
    name = t.str("name", Path(where).stem)
    desc = t.str("description", "")
    t.done()
    return Scenario(name, desc, duration, seed, host, tuple(clients), events, pools, settings,
                    expect, where)


def parse_pools(t: Table) -> tuple[Pool, ...]:
    pools: list[Pool] = []
    for pt in t.list("pools"):
        name = pt.str("name", "")
        if not name or any(p.name == name for p in pools):
            raise InputError(f"{pt.prefix}name", name, "must be a unique, non-empty name",
                             pt.where)
        pool = Pool(name, pt.str("parent", ""), pt.int("shares", 1000, lo=1),
                    pt.float("reservation", 0.0, lo=0.0), pt.float("limit", math.inf, lo=0.0))
        pt.done()
        pools.append(pool)
    names = {p.name for p in pools}
    for i, p in enumerate(pools):
        if p.parent and p.parent not in names:
            raise InputError(f"pools[{i}].parent", p.parent, "no such pool", t.where)
        seen, cur = {p.name}, p.parent
        while cur:
            if cur in seen:
                raise InputError(f"pools[{i}].parent", p.parent, "pools form a cycle", t.where)
            seen.add(cur)
            cur = next(q.parent for q in pools if q.name == cur)
    return tuple(pools)


def parse_host(t: Table) -> HostSpec:
    sockets = t.int("sockets", 0, lo=0)
    if sockets:
        per_socket = t.int("nodes_per_socket", 1, lo=1)
        nodes = sockets * per_socket
    else:
        nodes = t.int("nodes", 2, lo=1)
        per_socket = 1
    cores = t.float("cores_per_node", 8.0, lo=0.0)
    tpc = t.int("threads_per_core", 1, lo=1)
    mem = t.size("memory_per_node", 32 * GIB)
    prof = parse_profile(t, nodes)
    local = t.int("distance_local", 10, lo=10)
    near = t.int("distance_socket", prof.socket_distance, lo=10)
    far = t.int("distance_remote", prof.remote_distance, lo=10)
    if "distances" in t.data:
        d = np.asarray(t.raw("distances", None), dtype=object)
        try:
            dist = np.asarray(d, dtype=np.int64)
        except (TypeError, ValueError):
            raise InputError("host.distances", d.tolist(), "must be a matrix of integers",
                             t.where) from None
        if dist.shape != (nodes, nodes) or (np.diag(dist) != 10).any() or (dist < 10).any():
            raise InputError("host.distances", dist.tolist(),
                             f"must be a {nodes}x{nodes} matrix with 10 on the diagonal "
                             "and no entry below 10", t.where)
    else:
        sock = np.arange(nodes) // per_socket
        dist = np.where(sock[:, None] == sock[None, :], near, far)
        np.fill_diagonal(dist, local)
    topo = prof.topology(Topology.uniform(nodes, cores, mem, tpc, dist))
    spec = HostSpec(
        topo,
        migration_bandwidth=t.size("migration_bandwidth", GIB),
        migration_cpu_per_gib=t.float("migration_cpu_per_gib", 0.25, lo=0.0),
        remote_latency=t.float("remote_latency", 1.6, lo=1.0),
        tick=t.duration("tick", 0.1),
        costs=parse_costs(t.sub("costs")),
        memory=prof.memory,
    )
    if not 0.001 <= spec.tick <= 10:
        raise InputError("host.tick", spec.tick, "must be between 1ms and 10s", t.where)
    t.done()
    return spec


def parse_curve(t: Table) -> Curve:
    kind = t.str("kind", "constant")
    if kind not in KINDS:
        raise InputError(f"{t.prefix}kind", kind, f"must be one of {', '.join(KINDS)}", t.where)
    c = Curve(kind=kind, cpu=t.float("cpu", 1.0, lo=0.0))
    if kind == "step":
        c = Curve(kind, c.cpu, to=t.float("to", 0.0, lo=0.0), at=t.duration("at", 0.0))
    elif kind == "periodic":
        period = t.duration("period", 60.0)
        if period <= 0:
            raise InputError(f"{t.prefix}period", period, "must be positive", t.where)
        c = Curve(kind, c.cpu, amplitude=t.float("amplitude", 0.0, lo=0.0), period=period,
                  phase=t.float("phase", 0.0))
    elif kind == "random_walk":
        lo = t.float("min", 0.0, lo=0.0)
        hi = t.float("max", math.inf, lo=lo)
        c = Curve(kind, c.cpu, sigma=t.float("sigma", 0.1, lo=0.0), lo=lo, hi=hi)
    elif kind == "trace":
        values = t.raw("values", None)
        if not isinstance(values, list) or not values or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and v >= 0
                for v in values):
            raise InputError(f"{t.prefix}values", values,
                             "must be a non-empty list of non-negative numbers", t.where)
        c = Curve(kind, c.cpu, values=tuple(float(v) for v in values),
                  step=t.duration("step", 300.0))
    t.done()
    return c


def parse_clients(t: Table, host: HostSpec, rng: np.random.Generator,
                  pools: set[str]) -> list[ClientSpec]:
    out: list[ClientSpec] = []
    nodes = host.topology.n
    for ct in t.list("clients"):
        count = ct.int("count", 1, lo=1, hi=100_000)
        pattern = ct.str("name", "vm{i}" if count > 1 else f"vm{len(out)}")
        vcpus = ct.int("vcpus", 1, lo=1, hi=4096)
        mem = ct.size("memory", GIB)
        shares = ct.int("shares", 0, lo=0)
        reservation = ct.float("reservation", 0.0, lo=0.0)
        limit = ct.float("limit", math.inf, lo=0.0)
        pool = ct.str("pool", "")
        if pool and pool not in pools:
            raise InputError(f"{ct.prefix}pool", pool, "no such pool (see [[pools]])", ct.where)
        affinity = ct.nodes("cpu_affinity", nodes)
        mem_affinity = ct.nodes("mem_affinity", nodes)
        allowed = ct.nodes("allowed_nodes", nodes)
        prefer_ht = ct.bool("prefer_ht", False)
        group = ct.str("affinity_group", "")
        comm = ct.float("comm_intensity", 0.0, lo=0.0, hi=1.0)
        start_home = ct.node("start_home", nodes)
        memory_on = ct.node("memory_on", nodes)
        wide = ct.bool("numa_split", True)
        max_per_node = ct.int("max_vcpus_per_node", 0, lo=0)
        intensity = ct.float("mem_intensity", 0.5, lo=0.0, hi=1.0)
        touch = ct.size("touch_rate", 2 * GIB)
        start = ct.duration("start", 0.0)
        every = ct.duration("start_every", 0.0)
        stop = ct.duration("stop", math.inf) if "stop" in ct.data else math.inf
        lifetime = ct.duration("lifetime", math.inf) if "lifetime" in ct.data else math.inf
        jitter = ct.float("lifetime_jitter", 0.0, lo=0.0, hi=1.0)
        curve = parse_curve(ct.sub("demand"))
        if reservation > vcpus:
            raise InputError(f"{ct.prefix}reservation", reservation,
                             f"exceeds the client's {vcpus} vCPUs", ct.where)
        ct.done()
        for i in range(count):
            try:
                name = pattern.format(i=i)
            except (KeyError, IndexError, ValueError):
                raise InputError(f"{ct.prefix}name", pattern,
                                 "bad pattern: only {i} (with a format spec) is allowed",
                                 ct.where) from None
            s = start + i * every
            end = stop
            if lifetime < math.inf:
                end = min(end, s + lifetime * (1 + jitter * (2 * rng.random() - 1)))
            client = Client(name, name, vcpus, mem, shares, reservation, limit, pool,
                            affinity, mem_affinity, allowed, "", group, prefer_ht)
            parts = slices_needed(vcpus, mem, host.topology, prefer_ht, max_per_node) \
                if wide and client.managed else 1
            for piece in split(client, parts):
                f = piece.vcpus / vcpus
                out.append(ClientSpec(piece, curve.scaled(f) if parts > 1 else curve, s, end,
                                      intensity, int(touch * f), comm, start_home, memory_on))
    seen: set[str] = set()
    for c in out:
        if c.client.id in seen:
            raise InputError("clients.name", c.client.id, "duplicate client name", t.where)
        seen.add(c.client.id)
    return out


def parse_event(t: Table, ids: list[str], nodes: int) -> Event:
    at = t.duration("at", 0.0)
    if "on_node" in t.data:
        node = t.int("on_node", 0, lo=0, hi=nodes - 1)
        if "clients" in t.data:
            raise InputError(f"{t.prefix}clients", t.data["clients"],
                             "give either clients or on_node, not both", t.where)
        curve = parse_curve(t.sub("demand"))
        t.done()
        return Event(at, (), curve, node)
    pats = t.raw("clients", None)
    if isinstance(pats, str):
        pats = [pats]
    if not isinstance(pats, list) or not pats or not all(isinstance(p, str) for p in pats):
        raise InputError(f"{t.prefix}clients", pats,
                         "must be a client name, a glob or a list of them", t.where)
    chosen = tuple(i for i in ids if any(fnmatch.fnmatchcase(i, p) for p in pats))
    if not chosen:
        raise InputError(f"{t.prefix}clients", pats, "matches no client", t.where)
    curve = parse_curve(t.sub("demand"))
    t.done()
    return Event(at, chosen, curve)


# --- a checked view of one TOML table ---------------------------------------------------

_MISSING = object()


class Table:
    """Typed reads from a TOML table that name the field on error and reject unknown keys."""

    def __init__(self, data: Any, prefix: str, where: str):
        if not isinstance(data, dict):
            raise InputError(prefix.rstrip(".") or "document", data, "must be a table", where)
        self.data, self.prefix, self.where = data, prefix, where
        self.used: set[str] = set()

    def raw(self, key: str, default: Any) -> Any:
        self.used.add(key)
        return self.data.get(key, default)

    def _num(self, key: str, default: Any, kind: type, lo: float | None, hi: float | None):
        v = self.raw(key, default)
        if isinstance(v, bool) or not isinstance(v, int | float) or (
                kind is int and not isinstance(v, int)):
            what = "an integer" if kind is int else "a number"
            raise InputError(self.prefix + key, v, f"expected {what}", self.where)
        if (lo is not None and v < lo) or (hi is not None and v > hi) or v != v:
            rng = f"at least {lo}" if hi is None else f"between {lo} and {hi}"
            raise InputError(self.prefix + key, v, f"must be {rng}", self.where)
        return kind(v)

    def int(self, key: str, default: int, lo: int | None = None, hi: int | None = None) -> int:
        return self._num(key, default, int, lo, hi)

    def float(self, key: str, default: float, lo: float | None = None,
              hi: float | None = None) -> float:
        return self._num(key, default, float, lo, hi)

    def str(self, key: str, default: str) -> str:
        v = self.raw(key, default)
        if not isinstance(v, str):
            raise InputError(self.prefix + key, v, "expected a string", self.where)
        return v

    def size(self, key: str, default: int) -> int:
        return parse_size(self.raw(key, default), self.prefix + key, self.where)

    def duration(self, key: str, default: float) -> float:
        return parse_duration(self.raw(key, default), self.prefix + key, self.where)

    def bool(self, key: str, default: bool) -> bool:
        v = self.raw(key, default)
        if not isinstance(v, bool):
            raise InputError(self.prefix + key, v, "expected true or false", self.where)
        return v

    def node(self, key: str, n: int) -> int | None:
        v = self.raw(key, None)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < n:
            raise InputError(self.prefix + key, v, f"must be a node index 0..{n - 1}",
                             self.where)
        return v

    def nodes(self, key: str, n: int) -> frozenset[int] | None:
        v = self.raw(key, None)
        if v is None:
            return None
        if not isinstance(v, list) or not v or not all(
                isinstance(x, int) and not isinstance(x, bool) and 0 <= x < n for x in v):
            raise InputError(self.prefix + key, v, f"must be a list of node indices 0..{n - 1}",
                             self.where)
        return frozenset(v)

    def sub(self, key: str) -> Table:
        return Table(self.raw(key, {}), f"{self.prefix}{key}.", self.where)

    def list(self, key: str) -> list[Table]:
        v = self.raw(key, [])
        if not isinstance(v, list):
            raise InputError(self.prefix + key, v, "must be an array of tables ([[...]])",
                             self.where)
        return [Table(x, f"{self.prefix}{key}[{i}].", self.where) for i, x in enumerate(v)]

    def done(self) -> None:
        extra = sorted(set(self.data) - self.used)
        if extra:
            raise InputError(self.prefix + extra[0], self.data[extra[0]], "unknown field",
                             self.where)


def pages_of(nbytes: int) -> int:
    return -(-nbytes // PAGE_SIZE)
