"""The ``static`` baseline: initial placement only, as Xen's and Hyper-V's NUMA placement.

A new client gets a home once, by the same headroom rule the ESXi-style policy uses
(``placement.place_new``), and keeps it for life: no rebalancing, no memory migration.
Whatever first touch spilled to other nodes stays there.  It is what a hypervisor that
places a VM at power-on and never looks again delivers; the gap between it and the
dynamic policies is what rebalancing is worth.
"""

from __future__ import annotations

from homenode.model import Decision, Snapshot
from homenode.policy.base import register
from homenode.policy.load import client_vectors, entitlements
from homenode.policy.placement import place_new
from homenode.settings import Settings


@register("static")
class StaticPolicy:
    name = "static"

    def __init__(self, settings: Settings | None = None):
        self.s = settings or Settings()

    def decide(self, snap: Snapshot) -> Decision:
        d = Decision()
        if not snap.clients or not (snap.home < 0).any():
            return d
        cap, shares, res = client_vectors(snap)
        ent = entitlements(snap, cap, shares, res)
        place_new(snap, self.s, snap.home.copy(), ent, cap, d)
        return d
