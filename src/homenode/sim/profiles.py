"""Memory cost by machine: named host profiles (``[host] profile = "..."``).

A profile gives, per SLIT distance class, the memory latency and the bandwidth of the
path between a CPU node and a memory node, relative to local memory, and the SLIT
values its firmware reports (the host's default distances).  Distances in between are
interpolated.  With a profile, each directed link (CPU node -> memory node) carries at
most ``memory_bandwidth x bandwidth ratio`` bytes/s: clients reading remote memory put
``received cores x memory intensity x core_traffic`` bytes/s on it, spread by where
their pages lie, and when a link is asked for more than it carries, every access over
it takes that many times longer (the link saturates; latency grows with the queue).

Sources and how each ratio was derived: docs/baselines.md, "Host profiles".  Pure data
and pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    socket_distance: int                 # SLIT between nodes of one socket
    remote_distance: int                 # SLIT between sockets
    # (SLIT distance, latency ratio, bandwidth ratio), local (10, 1, 1) first
    points: tuple[tuple[int, float, float], ...]
    memory_only_distance: int = 0        # SLIT to a CPU-less memory node (CXL), 0 = none

    def latency(self, distance: np.ndarray) -> np.ndarray:
        d, lat, _ = zip(*self.points, strict=True)
        return np.interp(np.asarray(distance, float), d, lat)

    def bandwidth(self, distance: np.ndarray) -> np.ndarray:
        d, _, bw = zip(*self.points, strict=True)
        return np.interp(np.asarray(distance, float), d, bw)


PROFILES = {p.name: p for p in (
    Profile("xeon-2s", "2-socket Intel Xeon: one node per socket, UPI between them",
            12, 21, ((10, 1.0, 1.0), (21, 1.76, 0.5))),
    # latencies: Intel MLC idle latencies on a 2-socket Sapphire Rapids in SNC4
    # (gjbex/Code-optimization info/sapphirerapids_mlc.txt): local 95.4-97.4 ns, the
    # adjacent cluster 102.4-107.7 ns (1.07-1.11x), the far ones up to 123 ns, the
    # other socket 186-189 ns (1.96x); docs/baselines.md "Host profiles"
    Profile("snc", "Intel Xeon with sub-NUMA clustering (SNC2): two nodes per socket",
            12, 21, ((10, 1.0, 1.0), (12, 1.1, 0.9), (21, 1.96, 0.5))),
    Profile("epyc-nps1", "AMD EPYC, NPS1: one node per socket, xGMI between sockets",
            12, 32, ((10, 1.0, 1.0), (32, 2.4, 0.5))),
    Profile("epyc-nps4", "AMD EPYC, NPS4: four quadrant nodes per socket",
            12, 32, ((10, 1.0, 1.0), (12, 1.1, 0.8), (32, 2.4, 0.5))),
    Profile("cxl", "2-socket Xeon with CXL memory expanders as CPU-less nodes",
            12, 21, ((10, 1.0, 1.0), (21, 1.76, 0.5), (24, 2.5, 0.375)),
            memory_only_distance=24),
)}


def link_slowdown(flow: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """(N, N) factor by which accesses over each directed link are slowed: the demand
    on it over what it carries, at least 1; local paths (the diagonal) are never slowed."""
    u = np.where(capacity > 0, flow / np.maximum(capacity, 1e-9), 1.0)
    u = np.maximum(u, 1.0)
    np.fill_diagonal(u, 1.0)
    return u


def link_flows(home: np.ndarray, traffic: np.ndarray, pages: np.ndarray,
               n: int) -> np.ndarray:
    """(N, N) bytes/s from each CPU node to each memory node: each client's traffic from
    its home, split by where its pages lie.  ``home`` < 0 puts nothing on any link."""
    total = pages.sum(axis=1)
    ok = (home >= 0) & (total > 0) & (traffic > 0)
    flow = np.zeros((n, n))
    if ok.any():
        share = pages[ok] / total[ok, None]
        np.add.at(flow, home[ok], share * traffic[ok, None])
    return flow


@dataclass(frozen=True)
class HostMemory:
    """The memory side of a host: its profile, the link limits it implies."""

    profile: str = ""                    # "" = the linear SLIT model, no link limit
    memory_bandwidth: float = 0.0        # bytes/s a node's memory serves locally
    core_traffic: float = 0.0            # bytes/s one fully memory-bound core moves
    memory_only: frozenset[int] = frozenset()

    def link_capacity(self, distance: np.ndarray) -> np.ndarray:
        """(N, N) bytes/s each directed CPU node -> memory node path carries."""
        return self.memory_bandwidth * PROFILES[self.profile].bandwidth(distance)


@dataclass(frozen=True)
class _Parsed:
    memory: HostMemory
    socket_distance: int = 12
    remote_distance: int = 21
    memory_only_distance: int = 0

    def topology(self, topo):
        """The host with its memory-only nodes (no CPUs, the profile's distance)."""
        only = sorted(self.memory.memory_only)
        if not only:
            return topo
        cores = topo.cores.copy()
        cores[only] = 0.0
        cpus = tuple(() if i in self.memory.memory_only else c for i, c in enumerate(topo.cpus))
        dist = topo.distance.copy()
        if self.memory_only_distance:
            for i in only:
                dist[i, :] = dist[:, i] = self.memory_only_distance
                dist[i, i] = 10
        return type(topo)(topo.node_ids, cpus, cores, topo.mem_pages, dist)


def parse_profile(t, nodes: int) -> _Parsed:
    """``[host] profile``, ``memory_bandwidth``, ``core_traffic``, ``memory_only_nodes``
    (``t`` is the scenario reader's Table)."""
    from homenode.errors import InputError
    from homenode.units import GIB

    name = t.str("profile", "")
    only = t.nodes("memory_only_nodes", nodes) or frozenset()
    if not name:
        for key in ("memory_bandwidth", "core_traffic"):
            if key in t.data:
                raise InputError(f"host.{key}", t.data[key], "needs a host profile", t.where)
        if only:
            raise InputError("host.memory_only_nodes", sorted(only), "needs a host profile",
                             t.where)
        return _Parsed(HostMemory())
    if "remote_latency" in t.data:
        raise InputError("host.remote_latency", t.data["remote_latency"],
                         "does not apply with a host profile (it sets the latencies)", t.where)
    if name not in PROFILES:
        raise InputError("host.profile", name, f"must be one of {', '.join(PROFILES)}",
                         t.where)
    if len(only) >= nodes:
        raise InputError("host.memory_only_nodes", sorted(only),
                         "must leave at least one node with CPUs", t.where)
    p = PROFILES[name]
    mem = HostMemory(name, float(t.size("memory_bandwidth", 100 * GIB)),
                     float(t.size("core_traffic", 4 * GIB)), only)
    return _Parsed(mem, p.socket_distance, p.remote_distance, p.memory_only_distance)
