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
from pathlib import Path
from typing import Any

import numpy as np

from homenode.errors import InputError
from homenode.inputs import (
    MAX_CLIENT_NODE_CELLS,
    MAX_CLIENTS,
    MAX_CPUS,
    MAX_DURATION,
    MAX_NODES,
    MAX_VCPUS,
    Table,
    packaged_names,
    read_named,
    warn,
)
from homenode.model import Client, Pool, Topology
from homenode.settings import Settings
from homenode.sim.costs import Costs, parse_costs
from homenode.sim.demand import KINDS, Curve
from homenode.sim.profiles import PROFILES, HostMemory, parse_profile
from homenode.sim.traces import trace_clients
from homenode.units import GIB, PAGE_SIZE
from homenode.vnuma import slices_needed, split

DEFAULT_SCENARIO = "burst"
EVENT_MERGE = 2.0   # s: workload changes closer than this count as one event
MAX_THREADS_PER_CORE = 8   # SMT8 (POWER) is the most any CPU has
MAX_DISTANCE = 254         # a SLIT entry is one byte; 255 means unreachable
MAX_SHARES = 1 << 40       # ESXi-style shares: far above 1000 per vCPU x MAX_VCPUS


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
    return packaged_names("homenode.sim.scenarios")


def load(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a TOML file by path."""
    text, where, _ = read_named(name_or_path, "homenode.sim.scenarios", "scenario",
                                "scenario")
    return parse(text, where)


def parse(text: str, where: str) -> Scenario:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError("toml", where, f"not valid TOML: {e}") from None
    if not doc:
        raise InputError("scenario", where, "is empty: give at least a [host] or "
                         "[[clients]] table (see the README's scenario format)")
    t = Table(doc, "", where)
    seed = t.int("seed", 1, lo=0)
    rng = np.random.default_rng(seed)
    host = parse_host(t.sub("host"))
    duration = t.duration("duration", 300.0, positive=True)
    pools = parse_pools(t)
    clients = parse_clients(t, host, rng, {p.name for p in pools})
    # [[traces]]: clients whose demand (and memory) comes from real trace files.
    clients += [ClientSpec(tc.client, tc.curve, tc.start, math.inf, tc.mem_intensity)
                for tc in trace_clients(t, duration, {c.client.id for c in clients})]
    ids = [c.client.id for c in clients]
    events = tuple(parse_event(e, ids, host.topology.n) for e in t.list("events"))
    settings = t.raw("settings", {})
    if not isinstance(settings, dict):
        raise InputError("settings", settings, "must be a table", where)
    Settings.from_mapping(settings, where=where)   # refused here, before anything runs
    expect_t = t.sub("expect")
    expect = {k: expect_t.float(k, 0.0) for k in list(expect_t.data)}
    name = t.str("name", Path(where).stem)
    desc = t.str("description", "")
    t.done()
    if not clients:
        warn(f"{where}: no [[clients]] or [[traces]]: the simulated host stays idle")
    late = [f"events[{i}].at = {e.at:g} s" for i, e in enumerate(events) if e.at >= duration]
    late += [f"client {c.client.id} starts at {c.start:g} s" for c in clients
             if c.start >= duration][:1]
    if late:
        warn(f"{where}: {late[0]}, after the scenario's duration ({duration:g} s): it never "
             "happens")
    return Scenario(name, desc, duration, seed, host, tuple(clients), events, pools, settings,
                    expect, where)


def parse_pools(t: Table) -> tuple[Pool, ...]:
    pools: list[Pool] = []
    for pt in t.list("pools"):
        name = pt.str("name", "")
        if not name or any(p.name == name for p in pools):
            raise InputError(f"{pt.prefix}name", name, "must be a unique, non-empty name",
                             pt.where)
        pool = Pool(name, pt.str("parent", ""), pt.int("shares", 1000, lo=1, hi=MAX_SHARES),
                    pt.float("reservation", 0.0, lo=0.0, hi=MAX_CPUS),
                    pt.float("limit", math.inf, lo=0.0, allow_inf=True))
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
    # Every dimension is bounded before anything is allocated: a host the simulator
    # cannot hold is refused here, not by the kernel's OOM killer.
    sockets = t.int("sockets", 0, lo=0, hi=MAX_NODES)
    if sockets:
        per_socket = t.int("nodes_per_socket", 1, lo=1, hi=MAX_NODES)
        nodes = sockets * per_socket
        if nodes > MAX_NODES:
            raise InputError("host.nodes_per_socket", per_socket,
                             f"{sockets} sockets x {per_socket} nodes is more than "
                             f"{MAX_NODES} nodes", t.where)
    else:
        nodes = t.int("nodes", 2, lo=1, hi=MAX_NODES)
        per_socket = 1
    cores = t.float("cores_per_node", 8.0, lo=0.0, hi=MAX_CPUS)
    tpc = t.int("threads_per_core", 1, lo=1, hi=MAX_THREADS_PER_CORE)
    if nodes * round(cores * tpc) > MAX_CPUS:
        raise InputError("host.cores_per_node", t.data.get("cores_per_node", cores),
                         f"{nodes} nodes x {cores:g} cores x {tpc} threads is more than "
                         f"{MAX_CPUS} CPUs", t.where)
    mem = t.size("memory_per_node", 32 * GIB)
    prof = parse_profile(t, nodes)
    local = t.int("distance_local", 10, lo=10, hi=MAX_DISTANCE)
    near = t.int("distance_socket", prof.socket_distance, lo=10, hi=MAX_DISTANCE)
    far = t.int("distance_remote", prof.remote_distance, lo=10, hi=MAX_DISTANCE)
    if "distances" in t.data:
        d = t.raw("distances", None)
        try:
            dist = np.asarray(d, dtype=np.int64)
        except (TypeError, ValueError, OverflowError):
            raise InputError("host.distances", d, "must be a matrix of integers",
                             t.where) from None
        if dist.shape != (nodes, nodes) or (np.diag(dist) != 10).any() or (dist < 10).any() \
                or (dist > MAX_DISTANCE).any():
            raise InputError("host.distances", dist.tolist(),
                             f"must be a {nodes}x{nodes} matrix with 10 on the diagonal "
                             f"and entries from 10 to {MAX_DISTANCE}", t.where)
    else:
        sock = np.arange(nodes) // per_socket
        dist = np.where(sock[:, None] == sock[None, :], near, far)
        np.fill_diagonal(dist, local)
    topo = prof.topology(Topology.uniform(nodes, cores, mem, tpc, dist))
    spec = HostSpec(
        topo,
        migration_bandwidth=t.size("migration_bandwidth", GIB, lo=1),
        migration_cpu_per_gib=t.float("migration_cpu_per_gib", 0.25, lo=0.0, hi=1000.0),
        remote_latency=t.float("remote_latency", 1.6, lo=1.0, hi=100.0),
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
    c = Curve(kind=kind, cpu=t.float("cpu", 1.0, lo=0.0, hi=MAX_VCPUS))
    if kind == "step":
        # A step without its level or its time would be a constant in disguise.
        for key in ("cpu", "to", "at"):
            if key not in t.data:
                raise InputError(f"{t.prefix}{key}", None, "is missing: a step demand needs "
                                 "cpu, to and at", t.where)
        c = Curve(kind, c.cpu, to=t.float("to", 0.0, lo=0.0, hi=MAX_VCPUS),
                  at=t.duration("at", 0.0))
    elif kind == "periodic":
        period = t.duration("period", 60.0, positive=True)
        c = Curve(kind, c.cpu, amplitude=t.float("amplitude", 0.0, lo=0.0, hi=MAX_VCPUS),
                  period=period, phase=t.float("phase", 0.0, lo=-1e6, hi=1e6))
    elif kind == "random_walk":
        lo = t.float("min", 0.0, lo=0.0, hi=MAX_VCPUS)
        hi = t.float("max", math.inf, lo=lo, allow_inf=True)
        c = Curve(kind, c.cpu, sigma=t.float("sigma", 0.1, lo=0.0, hi=MAX_VCPUS), lo=lo,
                  hi=hi)
    elif kind == "trace":
        values = t.raw("values", None)
        if not isinstance(values, list) or not values or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and
                0 <= v <= MAX_VCPUS for v in values):
            raise InputError(f"{t.prefix}values", values,
                             f"must be a non-empty list of numbers from 0 to {MAX_VCPUS}",
                             t.where)
        c = Curve(kind, c.cpu, values=tuple(float(v) for v in values),
                  step=t.duration("step", 300.0, positive=True))
    t.done()
    return c


def parse_clients(t: Table, host: HostSpec, rng: np.random.Generator,
                  pools: set[str]) -> list[ClientSpec]:
    out: list[ClientSpec] = []
    nodes = host.topology.n
    for ct in t.list("clients"):
        count = ct.int("count", 1, lo=1, hi=100_000)
        pattern = ct.str("name", "vm{i}" if count > 1 else f"vm{len(out)}")
        vcpus = ct.int("vcpus", 1, lo=1, hi=MAX_VCPUS)
        mem = ct.size("memory", GIB)
        shares = ct.int("shares", 0, lo=0, hi=MAX_SHARES)
        reservation = ct.float("reservation", 0.0, lo=0.0, hi=MAX_VCPUS)
        limit = ct.float("limit", math.inf, lo=0.0, allow_inf=True)
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
        max_per_node = ct.int("max_vcpus_per_node", 0, lo=0, hi=MAX_VCPUS)
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
        if start + (count - 1) * every > MAX_DURATION:
            raise InputError(f"{ct.prefix}start_every", ct.data.get("start_every", every),
                             f"the last of {count} copies would start after "
                             f"{MAX_DURATION / 86400:g} days", ct.where)
        _fits_host(ct, host, vcpus, mem)
        if len(out) + count > MAX_CLIENTS or (len(out) + count) * nodes > MAX_CLIENT_NODE_CELLS:
            raise InputError(f"{ct.prefix}count", count,
                             f"the scenario would have more than {_client_bound(nodes)} "
                             f"clients on {nodes} nodes", ct.where)
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


def _client_bound(nodes: int) -> int:
    return min(MAX_CLIENTS, MAX_CLIENT_NODE_CELLS // nodes)


def _fits_host(ct: Table, host: HostSpec, vcpus: int, mem: int) -> None:
    """A VM needing more memory than the whole host cannot run (the simulator would cap
    its pages in silence); more vCPUs than CPUs only time-shares, so it is a warning."""
    topo = host.topology
    total = int(topo.mem_pages.sum()) * PAGE_SIZE
    if mem > total:
        raise InputError(f"{ct.prefix}memory", ct.data.get("memory", mem),
                         f"more than the whole host's memory ({total / GIB:g} GiB)", ct.where)
    cpus = sum(len(c) for c in topo.cpus)
    if vcpus > cpus:
        warn(f"{ct.where}: {ct.prefix}vcpus = {vcpus} is more than the host's {cpus} CPUs; "
             "its vCPUs time-share")


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


def pages_of(nbytes: int) -> int:
    return -(-nbytes // PAGE_SIZE)
