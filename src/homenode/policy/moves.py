"""The data of one rebalancing period: what the rebalancer knows (``View``) and batches of
candidate moves with the loads they would leave (``Moves``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from homenode.model import Reason
from homenode.settings import Settings

NONE = -1   # no swap partner


@dataclass
class View:
    """What the rebalancer knows during one period; updated as moves are picked."""

    s: Settings
    now: float
    period: int             # how many rebalance periods have run before this one
    ids: list[str]
    home: np.ndarray        # node index per client (updated as moves are made)
    since: np.ndarray       # time of last home change
    ent: np.ndarray         # entitled cores per client
    ent_peak: np.ndarray    # entitlement at the client's recent peak demand
    loads: np.ndarray       # per node
    peak_loads: np.ndarray  # per node, from ent_peak
    cores: np.ndarray
    mem_frac: np.ndarray    # (C, N) fraction of each client's pages per node
    managed: np.ndarray
    allowed: np.ndarray     # (C, N) numa.nodeAffinity
    res: np.ndarray         # reservation per client, cores
    reserved: np.ndarray    # per node: sum of reservations homed there
    distance: np.ndarray
    vm: np.ndarray          # VM group of a vNUMA client, -1 = none
    aff: np.ndarray         # affinity group, -1 = none
    swapped: np.ndarray     # time of the client's last swap
    owed: np.ndarray        # consecutive periods the client was owed CPU
    pages: np.ndarray = None       # resident pages per client
    lat: np.ndarray = None         # (N, N) latency ratio (settings.slit_latency)
    var: np.ndarray = None         # per client: variance of its demand forecast, cores^2
    trend: np.ndarray = None       # per client: forecast trend, cores/period
    node_var: np.ndarray = None    # per node: sum of var of its clients
    node_trend: np.ndarray = None  # per node: sum of its clients' trends, cores/period
    spread: np.ndarray = None      # per client: variance around its long-run mean
    node_spread: np.ndarray = None  # per node: sum of spread of its clients
    deficit: np.ndarray = None     # per client: core-s short of entitlement since owed
    peaks_known: bool = True   # a whole affinity_peak_window has been observed
    imbalanced_for: int = 1    # periods in a row the nodes needed balance, this one included

    def imbalance(self) -> float:
        live = self.loads[self.cores > 0]
        return float(live.max() - live.min()) if live.size > 1 else 0.0

    def imbalanced(self) -> bool:
        """Imbalanced beyond the threshold, with the busiest node busy enough to matter."""
        live = self.loads[self.cores > 0]
        return (self.imbalance() >= self.s.mig_imbalance_threshold
                and live.size > 0 and float(live.max()) >= self.s.balance_min_load)

    def needs_balance(self) -> bool:
        """Imbalanced now, and either some node is overcommitted (its clients are short
        of CPU this very second) or it has lasted ``balance_persistence`` periods."""
        if not self.imbalanced():
            return False
        contended = float(self.loads[self.cores > 0].max()) > 1.0 + 1e-9
        return contended or self.imbalanced_for >= self.s.balance_persistence

    def group_counts(self, group: np.ndarray) -> np.ndarray:
        """(G, N) number of each group's clients homed on each node."""
        n = self.cores.size
        ok = (group >= 0) & (self.home >= 0)
        g = int(group.max()) + 1 if group.size and group.max() >= 0 else 0
        return np.bincount(group[ok] * n + self.home[ok], minlength=g * n).reshape(g, n)


@dataclass
class Moves:
    """Candidates: client ``idx[k]`` from ``src`` to ``dst`` (and, for a swap,
    ``partner[k]`` from ``dst`` to ``src``)."""

    reason: Reason
    idx: np.ndarray
    src: int
    dst: int
    partner: np.ndarray
    imb_before: float
    imb_after: np.ndarray
    load_src_after: np.ndarray
    load_dst_after: np.ndarray
    peak_dst_after: np.ndarray
    max_after: np.ndarray

    @property
    def gain(self) -> np.ndarray:
        return self.imb_before - self.imb_after

    def take(self, keep: np.ndarray) -> Moves:
        """The candidates at ``keep`` (a mask or indices), as a batch of their own."""
        return Moves(self.reason, self.idx[keep], self.src, self.dst, self.partner[keep],
                     self.imb_before, self.imb_after[keep], self.load_src_after[keep],
                     self.load_dst_after[keep], self.peak_dst_after[keep],
                     self.max_after[keep])

    @property
    def swaps(self) -> bool:
        return bool((self.partner >= 0).any())


def make_moves(v: View, reason: Reason, idx: np.ndarray, src: int, dst: int,
               partner: np.ndarray | None = None) -> Moves:
    """Loads and imbalance if each candidate alone were carried out."""
    partner = np.full(idx.size, NONE) if partner is None else partner
    has = partner >= 0
    de = v.ent[idx] - np.where(has, v.ent[np.maximum(partner, 0)], 0.0)
    dp = v.ent_peak[idx] - np.where(has, v.ent_peak[np.maximum(partner, 0)], 0.0)
    live = v.cores > 0
    others = live.copy()
    others[[src, dst]] = False
    hi = v.loads[others].max() if others.any() else -np.inf
    lo = v.loads[others].min() if others.any() else np.inf
    new_src = v.loads[src] - de / v.cores[src] if live[src] else np.zeros(idx.size)
    new_dst = v.loads[dst] + de / v.cores[dst]
    pts = [new_dst] + ([new_src] if live[src] else [])
    top = np.maximum.reduce([np.full(idx.size, hi), *pts])
    imb_after = top - np.minimum.reduce([np.full(idx.size, lo), *pts])
    peak_dst = v.peak_loads[dst] + dp / v.cores[dst]
    return Moves(reason, idx, src, dst, partner, v.imbalance(), imb_after, new_src, new_dst,
                 peak_dst, top)


def movable(v: View) -> np.ndarray:
    """Clients the rebalancer may move: managed and placed."""
    return v.managed & (v.home >= 0)
