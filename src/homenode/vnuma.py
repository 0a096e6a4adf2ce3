"""Sizing wide VMs into NUMA clients (vNUMA), as ESXi's autosize does -- but weighing
memory too.

ESXi splits a VM whose vCPUs exceed a node's physical cores (threads with preferHT) into
the fewest clients that fit, spreading vCPUs evenly (``numa.autosize``,
``numa.vcpu.maxPerVirtualNode``); it ignores memory, so a memory-heavy VM spills onto a
remote node (Denneman 2017-10-05, 2022-11-03).  Here a VM is also split when its memory
exceeds ``MEMORY_FILL`` of a node's memory.
"""

from __future__ import annotations

import dataclasses
import math

from homenode.model import Client, Topology

MEMORY_FILL = 0.9   # a slice should leave this much of a node for others and the kernel


def slices_needed(vcpus: int, mem_bytes: int, topo: Topology, prefer_ht: bool = False,
                  max_vcpus_per_node: int = 0) -> int:
    """The fewest slices so that each fits one node's cores (or threads) and memory."""
    # Size by the nodes a slice could live on: those with both CPUs and memory (a
    # memoryless or CPU-less node would make every VM look wide).
    live = (topo.cores > 0) & (topo.mem_pages > 0)
    if not live.any():
        return 1
    threads = min(len(c) for c, ok in zip(topo.cpus, live, strict=True) if ok)
    per_node = max_vcpus_per_node or (threads if prefer_ht else int(topo.cores[live].min()))
    by_cpu = math.ceil(vcpus / max(per_node, 1))
    node_mem = int(topo.mem_pages[live].min()) * 4096
    by_mem = math.ceil(mem_bytes / (MEMORY_FILL * node_mem)) if node_mem > 0 else 1
    return max(1, min(max(by_cpu, by_mem), vcpus, int(live.sum())))


def split(client: Client, parts: int) -> list[Client]:
    """``parts`` clients named ``<id>/<k>``: vCPUs spread evenly (the first ones get the
    remainder), memory, shares, reservation and limit in proportion to vCPUs."""
    if parts <= 1:
        return [client]
    base, extra = divmod(client.vcpus, parts)
    out = []
    for k in range(parts):
        v = base + (1 if k < extra else 0)
        f = v / client.vcpus
        out.append(dataclasses.replace(
            client, id=f"{client.id}/{k}", name=f"{client.name}/{k}", vcpus=v,
            mem_bytes=int(client.mem_bytes * f), shares=max(1, round(client.shares * f)),
            reservation=client.reservation * f, limit=client.limit * f, vm=client.id))
    return out
