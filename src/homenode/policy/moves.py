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
    changes: np.ndarray = None     # per client: time of the home_change_limit-th last
                                   # home change (-inf: fewer so far)
    waited: np.ndarray = None      # per client: core-s lost while its best move was
                                   # refused as not paying (``payoff.regret_pays``)
    priced: np.ndarray = None      # per client: best gain rate priced this period, cores
                                   # (-inf: none priced)
    room: np.ndarray = None        # per node: pages it can still take (free less
                                   # page_mig_free_reserve); None: no limit known
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
    """Candidates: client ``idx[k]`` from ``src[k]`` to ``dst[k]`` (and, for a swap,
    ``partner[k]`` from ``dst[k]`` to ``src[k]``).

    One batch holds the candidates of many (source, destination) pairs at once, so that
    each rule is one array operation over all of them however many nodes the host has;
    ``group[k]`` numbers the pair (in the order the candidates were generated), which is
    what ``explain`` keeps its best few of."""

    reason: Reason
    idx: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    partner: np.ndarray
    imb_before: float
    imb_after: np.ndarray
    load_src_after: np.ndarray
    load_dst_after: np.ndarray
    peak_dst_after: np.ndarray
    max_after: np.ndarray
    group: np.ndarray

    @property
    def gain(self) -> np.ndarray:
        return self.imb_before - self.imb_after

    def take(self, keep: np.ndarray) -> Moves:
        """The candidates at ``keep`` (a mask or indices), as a batch of their own."""
        return Moves(self.reason, self.idx[keep], self.src[keep], self.dst[keep],
                     self.partner[keep], self.imb_before, self.imb_after[keep],
                     self.load_src_after[keep], self.load_dst_after[keep],
                     self.peak_dst_after[keep], self.max_after[keep], self.group[keep])

    @property
    def swaps(self) -> bool:
        return bool((self.partner >= 0).any())


def concat(batches: list[Moves]) -> Moves:
    """One batch of several of the same reason, their pairs numbered on in order."""
    if len(batches) == 1:
        return batches[0]
    groups, base = [], 0
    for m in batches:
        groups.append(m.group + base)
        base += int(m.group.max()) + 1 if m.group.size else 0

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(m, name) for m in batches])

    return Moves(batches[0].reason, cat("idx"), cat("src"), cat("dst"), cat("partner"),
                 batches[0].imb_before, cat("imb_after"), cat("load_src_after"),
                 cat("load_dst_after"), cat("peak_dst_after"), cat("max_after"),
                 np.concatenate(groups))


def _others(v: View) -> tuple[np.ndarray, np.ndarray]:
    """(N, N): the highest and the lowest load of the live nodes other than a pair
    (-inf / inf where there is none)."""
    n = v.cores.size
    nodes = np.flatnonzero(v.cores > 0)
    out = []
    for key, empty in ((-v.loads[nodes], -np.inf), (v.loads[nodes], np.inf)):
        m = np.full((n, n), empty)
        # of the 3 most extreme nodes at least one lies outside any pair; the more
        # extreme one, written last, wins where it is outside the pair
        for x in nodes[np.argsort(key, kind="stable")][:3][::-1]:
            clear = np.ones((n, n), bool)
            clear[x, :] = False
            clear[:, x] = False
            m[clear] = v.loads[x]
        out.append(m)
    return out[0], out[1]


def cell(a: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``a[rows, cols]`` of a (C, N) array, as one gather (a fraction of the time of
    numpy's two-index form on the thousands of candidates of a large host)."""
    return np.ascontiguousarray(a).reshape(-1)[rows * a.shape[1] + cols]


def with_partner(x: np.ndarray, m: Moves) -> np.ndarray:
    """``x`` of each candidate's swap partner, 0 where it has none."""
    if not m.swaps:
        return np.zeros(m.idx.size)
    return np.where(m.partner >= 0, x[np.maximum(m.partner, 0)], 0.0)


def _per_candidate(node: int | np.ndarray, k: int) -> np.ndarray:
    if isinstance(node, np.ndarray) and node.dtype == np.int64 and node.shape == (k,):
        return node
    return np.full(k, node, np.int64) if np.ndim(node) == 0 else np.asarray(node, np.int64)


def make_moves(v: View, reason: Reason, idx: np.ndarray, src: int | np.ndarray,
               dst: int | np.ndarray, partner: np.ndarray | None = None,
               group: np.ndarray | None = None) -> Moves:
    """Loads and imbalance if each candidate alone were carried out."""
    k = idx.size
    src = _per_candidate(src, k)
    dst = _per_candidate(dst, k)
    group = np.zeros(k, np.int64) if group is None else group
    de, dp = v.ent[idx], v.ent_peak[idx]
    if partner is None:
        partner = np.full(k, NONE)
    elif (partner >= 0).all():
        de, dp = de - v.ent[partner], dp - v.ent_peak[partner]
    else:
        has = partner >= 0
        de = de - np.where(has, v.ent[np.maximum(partner, 0)], 0.0)
        dp = dp - np.where(has, v.ent_peak[np.maximum(partner, 0)], 0.0)
    n = v.cores.size
    hi_m, lo_m = _others(v)
    pair = src * n + dst
    hi, lo = hi_m.reshape(-1)[pair], lo_m.reshape(-1)[pair]
    cores_dst, cores_src = v.cores[dst], v.cores[src]
    new_dst = v.loads[dst] + de / cores_dst
    top = np.maximum(hi, new_dst)
    bottom = np.minimum(lo, new_dst)
    live_src = cores_src > 0
    if live_src.all():
        new_src = v.loads[src] - de / cores_src
        top = np.maximum(top, new_src)
        bottom = np.minimum(bottom, new_src)
    else:
        new_src = np.where(live_src,
                           v.loads[src] - de / np.where(live_src, cores_src, 1.0), 0.0)
        top = np.where(live_src, np.maximum(top, new_src), top)
        bottom = np.where(live_src, np.minimum(bottom, new_src), bottom)
    peak_dst = v.peak_loads[dst] + dp / cores_dst
    return Moves(reason, idx, src, dst, partner, v.imbalance(), top - bottom, new_src,
                 new_dst, peak_dst, top, group)


def movable(v: View) -> np.ndarray:
    """Clients the rebalancer may move: managed and placed."""
    return v.managed & (v.home >= 0)
