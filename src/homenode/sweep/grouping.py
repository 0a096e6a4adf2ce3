"""Host-sized groups of a trace set's VMs, as a cluster spreads a month's VMs over hosts.

A trace month holds more VMs than one host runs (September 2013's want 20-40 cores on an
average day), so each host shape gets the VMs split into groups, one group per simulated
host, fixed for the whole month (a cluster does not reshuffle its VMs every day):

1. the number of groups is the smallest k >= round(total mean demand / (``group_load`` x
   the shape's cores)), at least 1, for which step 2 succeeds -- so a group's demand
   averages about ``group_load`` of its cores (peaks go above; light months stay light:
   a month whose VMs want less than one host gives one group below the target);
2. longest-processing-time packing: VMs by mean demand, largest first (ties by name),
   each into the group with the least demand so far among those its footprint still fits
   in (footprints of a group <= ``group_memory`` x the host's memory).

The footprint used here is the VM's largest over the whole trace (an upper bound of any
day's footprint, whatever ``memory_stat`` says), so every day of a group fits its host.
"""

from __future__ import annotations

from dataclasses import dataclass

from homenode.errors import InputError
from homenode.units import GIB


@dataclass(frozen=True)
class VM:
    name: str
    mean_cores: float
    footprint: int          # bytes, the largest over the trace


def plan(vms: list[VM], cores: float, memory: int, *, load: float, memory_share: float,
         groups: int = 0, field: str = "shapes", where: str | None = None
         ) -> list[tuple[str, ...]]:
    """The groups (VM names, sorted) for one host shape; see the module doc."""
    room = memory * memory_share
    for vm in vms:
        if vm.footprint > room:
            raise InputError(field, f"{memory / GIB:g} GiB", f"footprint of {vm.name} "
                             f"({vm.footprint / GIB:.1f} GiB) does not fit "
                             f"{memory_share:g} of the host's memory", where)
    if groups:
        packed = _pack(vms, groups, room)
        if packed is None:
            raise InputError(field, f"{memory / GIB:g} GiB", f"the footprints "
                             f"({sum(v.footprint for v in vms) / GIB:.1f} GiB) cannot be "
                             f"packed into {groups} hosts of this shape", where)
        return packed
    total = sum(v.mean_cores for v in vms)
    k = max(1, round(total / (load * cores)))
    while True:
        packed = _pack(vms, k, room)
        if packed is not None:
            return packed
        k += 1          # terminates: k = len(vms) always fits (each VM fits alone)


def _pack(vms: list[VM], k: int, room: float) -> list[tuple[str, ...]] | None:
    demand = [0.0] * k
    mem = [0] * k
    members: list[list[str]] = [[] for _ in range(k)]
    for vm in sorted(vms, key=lambda v: (-v.mean_cores, -v.footprint, v.name)):
        fits = [g for g in range(k) if mem[g] + vm.footprint <= room]
        if not fits:
            return None
        g = min(fits, key=lambda g: (demand[g], mem[g], g))
        demand[g] += vm.mean_cores
        mem[g] += vm.footprint
        members[g].append(vm.name)
    return [tuple(sorted(m)) for m in members if m]
