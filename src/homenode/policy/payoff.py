"""The one test every home change must pass: does it pay for itself?

For a candidate (a client from ``src`` to ``dst``, or two clients exchanged), in
core-seconds of useful work, with the arithmetic of ``homenode.costmodel`` (the same the
simulator runs on):

* **gain rate** (cores): the CPU the two nodes deliver in all after the move less
  before (``expected_delivered``: a node busy only at its demand peaks still loses CPU
  there), plus the work a client's remote memory costs it now and will not once its
  memory has followed (locality), plus the communication brought onto one node
  (affinity, weighted by ``cost_comm_intensity``);
* **expected stay** (s): how long those conditions are expected to last, from each
  client's forecast (``forecast.py``): the time until the nodes' demand drift or
  wander erases the move's slack (its gain, or the destination's spare cores) --
  never, for wander, when the slack exceeds two long-run spreads of that demand --
  capped at ``cost_horizon``;
* **cost** (core-seconds): the remote accesses while the memory follows at the *paced*
  rate (``page_mig_rate_max`` slowed below ``page_mig_remote_knee``, after
  ``page_mig_delay``), the copy's CPU (``cost_copy_cpu_per_gib``), and the expected cost
  of moving back (the same again, times the chance that the conditions end within
  ``cost_horizon``).

A move is made only if gain rate x stay exceeds cost by ``cost_margin``.  Memory
intensity is not visible to a policy (no host reports it), so ``cost_mem_intensity``
stands for it; latency per SLIT distance comes from ``slit_latency``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from homenode.costmodel import expected_delivered, memory_efficiency, remote_seconds
from homenode.model import Reason
from homenode.policy.groupgain import affinity_gain
from homenode.policy.moves import Moves, View, with_partner
from homenode.units import GIB, PAGE_SIZE

MIN_SLACK = 0.05   # cores: a slack below this is erased by noise at once


@dataclass
class Payoff:
    """Per candidate of one batch: the arithmetic, in core-seconds, GiB and seconds."""

    rate: np.ndarray      # gain rate, cores
    stay: np.ndarray      # expected stay, s
    remote: np.ndarray    # core-s lost to remote accesses while memory follows
    copy_cpu: np.ndarray  # core-s the copy itself takes
    back: np.ndarray      # expected core-s of moving back
    gib: np.ndarray       # GiB to copy
    copy_s: np.ndarray    # s until the memory has followed
    margin: float
    noise: np.ndarray     # cores: one period's forecast error of the two nodes' demand

    @property
    def gain(self) -> np.ndarray:
        return self.rate * self.stay

    @property
    def cost(self) -> np.ndarray:
        return self.remote + self.copy_cpu + self.back

    @property
    def pays(self) -> np.ndarray:
        return (self.rate > 0) & (self.gain > (1.0 + self.margin) * self.cost)

    def text(self, k: int) -> str:
        return (f"gain {self.gain[k]:.1f} core-s ({self.rate[k]:.2f} cores x {self.stay[k]:.0f} s"
                f" stay) vs cost {self.cost[k]:.1f} core-s ({self.gib[k]:.1f} GiB copied in "
                f"{self.copy_s[k]:.0f} s: remote {self.remote[k]:.1f} + copy CPU "
                f"{self.copy_cpu[k]:.1f} + moving back {self.back[k]:.1f}), needs "
                f"x{1 + self.margin:.2f}")


def mean_latency(v: View, i: np.ndarray, node: np.ndarray) -> np.ndarray:
    """Mean latency ratio of client i's memory seen from ``node`` (one per candidate)."""
    return (v.mem_frac[i] * v.lat[node]).sum(axis=1)


def _fit(v: View, i: np.ndarray, dst: np.ndarray, freed: np.ndarray) -> np.ndarray:
    """Share of client i's remote pages that ``dst`` has room for, ``freed`` pages counted
    as leaving it (a swap partner's); 1 where the view knows no limit."""
    if v.room is None:
        return np.ones(i.size)
    remote = v.pages[i] * (1.0 - v.mem_frac[i, dst])
    return np.clip((v.room[dst] + freed) / np.maximum(remote, 1.0), 0.0, 1.0)


def _copy(v: View, i: np.ndarray, dst: np.ndarray, ent_after: np.ndarray,
          fit: np.ndarray) -> tuple[np.ndarray, ...]:
    """(remote core-s, copy CPU core-s, GiB, seconds, core-s per s still lost once the
    copy is done) of client(s) i following to dst, of whose remote pages only ``fit``
    find room there: the rest stays where it is, remote for good."""
    s = v.s
    local = v.mem_frac[i, dst]
    x0 = np.clip(1.0 - local, 0.0, 1.0)
    lat_rem = np.where(x0 > 1e-12, (mean_latency(v, i, dst) - local) / np.maximum(x0, 1e-12),
                       1.0)
    moved = x0 * fit
    integral, secs = remote_seconds(moved, v.pages[i], s.page_mig_rate_max,
                                    s.page_mig_remote_knee, s.page_mig_rate_min_ratio,
                                    s.page_mig_delay)
    remote = ent_after * s.cost_mem_intensity * (lat_rem - 1.0) * integral
    gib = moved * v.pages[i] * PAGE_SIZE / GIB
    stuck = x0 - moved
    lost = np.where(stuck > 1e-12, ent_after * (1.0 - memory_efficiency(
        s.cost_mem_intensity, 1.0 + stuck * (lat_rem - 1.0))), 0.0)
    return remote, gib * s.cost_copy_cpu_per_gib, gib, secs, lost


def payoff(v: View, m: Moves) -> Payoff:
    cached = getattr(m, "_payoff", None)
    if cached is not None:
        return cached
    s = v.s
    a, b = m.src, m.dst
    i = m.idx
    has = m.partner >= 0
    j = np.maximum(m.partner, 0)
    ei = v.ent[i]
    ej = np.where(has, v.ent[j], 0.0)
    de = ei - ej
    cores = v.cores
    want = v.loads * cores
    # how far each node's demand strays over a stay: the clients' long-run spreads
    var_i, var_j = v.spread[i], np.where(has, v.spread[j], 0.0)
    sd_a, sd_b = np.sqrt(v.node_spread[a]), np.sqrt(v.node_spread[b])
    sd_a2 = np.sqrt(np.maximum(v.node_spread[a] - var_i + var_j, 0.0))
    sd_b2 = np.sqrt(np.maximum(v.node_spread[b] + var_i - var_j, 0.0))
    before = (expected_delivered(want[a], sd_a, cores[a])
              + expected_delivered(want[b], sd_b, cores[b]))
    after = (expected_delivered(want[a] - de, sd_a2, cores[a])
             + expected_delivered(want[b] + de, sd_b2, cores[b]))
    cpu = after - before

    def got(e: np.ndarray, w: np.ndarray, c: float) -> np.ndarray:
        return e * np.minimum(1.0, c / np.maximum(w, 1e-9))

    r_i, r_i2 = got(ei, want[a], cores[a]), got(ei, want[b] + de, cores[b])
    r_j, r_j2 = got(ej, want[b], cores[b]), got(ej, np.maximum(want[a] - de, 0), cores[a])
    eff_i = memory_efficiency(s.cost_mem_intensity, mean_latency(v, i, a))
    on_b = np.where(has, v.pages[j] * v.mem_frac[j, b], 0.0)   # leaves b with j
    remote, copy_cpu, gib, secs, lost = _copy(v, i, b, r_i2, _fit(v, i, b, on_b))
    rate = cpu + r_i * (1.0 - eff_i) - lost
    if has.any():
        eff_j = memory_efficiency(s.cost_mem_intensity, mean_latency(v, j, b))
        on_a = v.pages[i] * v.mem_frac[i, a]
        rj, cj, gj, tj, lj = _copy(v, j, a, r_j2, _fit(v, j, a, on_a))
        rate = rate + np.where(has, r_j * (1.0 - eff_j) - lj, 0.0)
        remote = remote + np.where(has, rj, 0.0)
        copy_cpu = copy_cpu + np.where(has, cj, 0.0)
        gib = gib + np.where(has, gj, 0.0)
        secs = np.maximum(secs, np.where(has, tj, 0.0))
    if (v.aff >= 0).any():
        far = float(v.lat.max())
        rate = rate + s.cost_comm_intensity * r_i * (far - 1.0) * affinity_gain(v, m)
    # expected stay: until the drift or wander of the two nodes' demand erases the slack
    spare = np.maximum(cores[b] - want[b] - de, 0.0)
    slack = np.maximum(np.maximum(rate, spare), MIN_SLACK)
    sigma2 = v.node_var[a] + v.node_var[b]
    drift = abs(v.node_trend[a] - v.node_trend[b])
    per = s.rebalance_period
    # one-period errors add up like a random walk only as far as the clients stray at
    # all: a slack beyond two long-run spreads is not erased by wander
    # (a client too new to have a long-run spread is bounded only by its wander)
    reach = np.maximum(v.node_spread[a] + v.node_spread[b], sigma2)
    bounded = np.clip(1.0 - slack * slack / (4.0 * np.maximum(reach, 1e-12)), 0.0, 1.0)
    inv = (1.0 / s.cost_horizon + bounded * sigma2 / (slack * slack * per)
           + drift / (slack * per))
    stay = 1.0 / inv
    # a first placement sets one home whichever node it picks: no home change to pay for
    overhead = 0.0 if m.reason is Reason.INITIAL else s.cost_move_overhead
    moves = np.where(has, 2.0, 1.0) * overhead
    copy_cpu = copy_cpu + moves
    back = np.clip(1.0 - stay / s.cost_horizon, 0.0, 1.0) * (remote + copy_cpu)
    p = Payoff(rate, stay, remote, copy_cpu, back, gib, secs, s.cost_margin, np.sqrt(sigma2))
    m._payoff = p
    return p


def does_not_pay(v: View, m: Moves) -> np.ndarray:
    """The move does not pay for itself: the work it gains over its expected stay is not
    ``cost_margin`` above what it costs (remote accesses while memory follows at the
    paced rate, the copy's CPU, and the expected cost of moving back)."""
    if not v.s.cost_benefit_enable:
        return np.zeros(m.idx.size, bool)
    p = payoff(v, m)
    if v.priced is not None:
        # what not moving loses beyond what one period's noise explains
        np.maximum.at(v.priced, m.idx, p.rate - p.noise)
    return ~(p.pays | regret_pays(v, m, p))


def regret_pays(v: View, m: Moves, p: Payoff) -> np.ndarray:
    """The move has already been paid for by waiting: the work the client lost while
    its best move was refused (``View.waited``, core-seconds) has reached what this
    one costs once (remote accesses while its memory follows and the copy's CPU).

    The forecast's expected stay is a guess; this is the break-even rule of ski rental,
    which needs none: wait while the loss so far is below the price of moving, then
    move.  Whatever the conditions go on to do, it loses at most twice what knowing
    their length in advance would (Karlin et al., 1988), so a condition that outlasts
    every forecast -- a level shift the forecaster still reads as wander -- costs at
    most one more move's price."""
    if v.waited is None or not v.s.cost_regret:
        return np.zeros(m.idx.size, bool)
    return (p.rate > MIN_SLACK) & (regret_waited(v, m) >= p.remote + p.copy_cpu)


def regret_waited(v: View, m: Moves) -> np.ndarray:
    """Core-seconds the candidate's client (or a swap's partner, whichever more) has
    lost waiting for a move."""
    return np.maximum(v.waited[m.idx], with_partner(v.waited, m))


def rotation_does_not_repay(v: View, m: Moves) -> np.ndarray:
    """A fairness rotation must repay its copy: how far the owed client has fallen
    behind its entitlement (core-seconds, less how far a swap partner has fallen
    behind) is not ``fairness_price`` times what copying their memory costs the host in
    remote accesses and copy CPU (a rotation only shifts CPU between clients, so the work it
    loses must be small beside the debt it repays), or not yet ``fairness_slack`` of
    its entitlement over ``cost_horizon``; until it is, the host's shares alone divide
    the CPU."""
    if not v.s.cost_benefit_enable:
        return np.zeros(m.idx.size, bool)
    return behind(v, m) <= rotation_need(v, m)


def behind(v: View, m: Moves) -> np.ndarray:
    """Core-seconds the owed client is behind, relative to a swap partner."""
    has = m.partner >= 0
    return v.deficit[m.idx] - np.where(has, v.deficit[np.maximum(m.partner, 0)], 0.0)


def rotation_copy(v: View, m: Moves) -> np.ndarray:
    """Core-seconds the rotation's memory copy costs the host: the remote accesses while
    the memory follows and the copy's CPU (not the fixed per-move overhead, which a
    rotation of a small client pays as much as one of a big client)."""
    p = payoff(v, m)
    return p.remote + p.gib * v.s.cost_copy_cpu_per_gib


def rotation_need(v: View, m: Moves) -> np.ndarray:
    """Core-seconds an owed client must be short of before a rotation is worth it."""
    slack = v.s.fairness_slack * v.ent[m.idx] * v.s.cost_horizon
    return np.maximum(v.s.fairness_price * rotation_copy(v, m), slack)


def fairness_would_undo(v: View, m: Moves) -> np.ndarray:
    """The move takes a client that long-term fairness owes a rotation -- behind its
    entitlement (less how far its swap partner is) by more than ``fairness_slack`` of
    its entitlement over ``cost_horizon``, all that a rotation back needs while its
    memory has barely followed -- to a node more crowded than the one it leaves:
    fairness would move it back as soon as ``min_residence`` allows, and the two rules
    would pass it back and forth, copying its memory each time.  The same for a swap's
    partner."""
    if not v.s.cost_benefit_enable or v.s.lterm_fairness_interval <= 0:
        return np.zeros(m.idx.size, bool)
    # just after the move its memory has barely followed, so the rotation back costs
    # little: it needs only its floor (rotation_need's fairness_slack term)
    floor = v.s.fairness_slack * v.s.cost_horizon
    lead = behind(v, m)
    worse_i = m.load_dst_after > v.loads[m.src] + 1e-12
    worse_j = (m.partner >= 0) & (m.load_src_after > v.loads[m.dst] + 1e-12)
    return ((worse_i & (lead > floor * v.ent[m.idx]))
            | (worse_j & (-lead > floor * with_partner(v.ent, m))))


def arithmetic(v: View, m: Moves, k: int, verdict: str) -> str:
    """The cost-benefit arithmetic of candidate k, for ``explain``: worked out for moves
    that passed every rule or were stopped by this one ("" otherwise)."""
    if not v.s.cost_benefit_enable or verdict not in ("", "does_not_pay",
                                                      "rotation_does_not_repay",
                                                      "fairness_would_undo"):
        return ""
    if m.reason is Reason.FAIRNESS or verdict == "fairness_would_undo":
        return fairness_text(v, m, k)
    p = payoff(v, m)
    text = p.text(k)
    if v.waited is not None and v.s.cost_regret and m.reason is not Reason.INITIAL:
        w = float(regret_waited(v, m)[k])
        if w > 0.0:
            text += (f"; lost {w:.1f} core-s waiting, of "
                     f"{p.remote[k] + p.copy_cpu[k]:.1f} that moving costs")
    return text


def fairness_text(v: View, m: Moves, k: int) -> str:
    p = payoff(v, m)
    return (f"behind by {behind(v, m)[k]:.1f} core-s, needs {rotation_need(v, m)[k]:.1f} "
            f"(rotation copy {rotation_copy(v, m)[k]:.1f} core-s: {p.gib[k]:.1f} GiB "
            f"copied in {p.copy_s[k]:.0f} s, x{v.s.fairness_price:g})")
