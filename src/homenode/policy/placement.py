"""Step 1 -- initial placement: a new client goes to the node with the most headroom.

Headroom is measured after the client is added: spare cores (after entitled load) as a
fraction of the node's cores, plus ``placement_mem_weight`` times spare memory as a
fraction of the node's memory; going over a node's cores costs ``OVERLOAD_PENALTY`` times
more than spare cores earn.  Clients placed in the same tick count against their node at
once, so a burst of simultaneous starts spreads out instead of piling onto the node that
looked emptiest when the burst began (ESXi KB 430776, ``numad -w``).

A client that already has memory (a running process homenode has just found) is drawn
to it: each unit of SLIT distance between a node and that memory, weighted by where the
memory is, costs ``CLOSENESS_SCALE * MEMORY_PULL``, and the node holding it earns up to
``MEMORY_STAY`` -- so it stays by its memory, or goes to a node of the same socket,
unless CPU headroom says otherwise.

Only nodes the client may use (``allowed_nodes``) and that can honour its reservation
beside the reservations already there are candidates.  The slices of a wide VM that
start together are placed as a set: for each node, the VM's slices would go to it and
its nearest nodes; the set with the most headroom, less ``CLOSENESS_SCALE *
wide_distance_weight`` per unit of mean SLIT distance above local, wins -- so on an
EPYC-like host (10/12/32) a VM stays within one socket whenever one has room.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from homenode.model import LOCAL_DISTANCE, Considered, Decision, Reason, SetHome, Snapshot
from homenode.settings import Settings

CLOSENESS_SCALE = 0.05   # headroom per SLIT unit (x wide_distance_weight)
MEMORY_PULL = 1.0        # x CLOSENESS_SCALE per SLIT unit between a node and the memory
                         # a client already has (an existing process found by the daemon)
MEMORY_STAY = 0.5        # headroom a node earns for holding all of that memory: staying
                         # copies nothing
OVERLOAD_PENALTY = 4.0   # overcommitted cores cost this much more than spare cores earn
CORE_EPS = 1e-9          # cores: sums of float reservations that "fit" within rounding
SCORE_EPS = 1e-12        # a wide VM's layout must beat the best so far by more than rounding


def headroom(cores: np.ndarray, used_cores: np.ndarray, mem_pages: np.ndarray,
             free_pages: np.ndarray, cpu: float, mem: int, mem_weight: float) -> np.ndarray:
    """Score per node of placing a client needing ``cpu`` cores and ``mem`` pages there."""
    cpu_head = np.where(cores > 0, (cores - used_cores - cpu) / np.maximum(cores, CORE_EPS),
                        -np.inf)
    cpu_head = np.where(cpu_head < 0, OVERLOAD_PENALTY * cpu_head, cpu_head)
    mem_head = np.where(mem_pages > 0, (free_pages - mem) / np.maximum(mem_pages, 1), -1.0)
    return cpu_head + mem_weight * mem_head


class _Ledger:
    """Node usage as placement goes, so clients placed together count at once."""

    def __init__(self, snap: Snapshot, home: np.ndarray, ent: np.ndarray):
        vec = snap.vectors()
        placed = home >= 0
        n = snap.topology.n
        self.used = np.bincount(home[placed], ent[placed], n)
        self.reserved = np.bincount(home[placed], vec.reservation[placed], n)
        self.free = snap.free_pages.astype(float).copy()

    def take(self, node: int, cpu: float, res: float, mem: int) -> None:
        self.used[node] += cpu
        self.reserved[node] += res
        self.free[node] -= mem


class Adopts(Protocol):
    """How a client that already has memory is placed (``adoption.Adopter``)."""

    def choose(self, i: int, used: np.ndarray, score: np.ndarray,
               cpu: float) -> Any: ...


def place_new(snap: Snapshot, s: Settings, home: np.ndarray, ent: np.ndarray,
              cap: np.ndarray, decision: Decision,
              adopt: Callable[[], Adopts] | None = None) -> None:
    """Give every unplaced managed client a home; updates ``home`` in place.

    ``adopt`` (built on first need) places a client that already has memory by the
    cost-benefit rule instead of the ``MEMORY_STAY`` / ``MEMORY_PULL`` headroom terms."""
    new = np.flatnonzero((home < 0) & snap.managed)
    if new.size == 0:
        return
    vec = snap.vectors()
    book = _Ledger(snap, home, ent)
    # A client that has not run yet shows no demand: count all its vCPUs (the fix
    # KB 430776 promises), or its measured demand if the host already has one.
    cpu = np.where(ent > 0, ent, cap)
    need = np.maximum(vec.mem_pages - snap.pages.sum(axis=1), 0)
    done: set[int] = set()
    adopter: Adopts | None = None
    for i in new:
        if i in done:
            continue
        group = [i]
        if vec.vm[i] >= 0:
            group = [int(j) for j in new if vec.vm[j] == vec.vm[i]]
        why = ""
        if len(group) > 1:
            nodes = _place_set(snap, s, book, group, cpu, need)
        elif adopt is not None and snap.pages[i].sum() > 0:
            adopter = adopter or adopt()
            score = _scores(snap, s, book, i, cpu, need, memory_terms=False)
            got = adopter.choose(int(i), book.used, _near_siblings(snap, s, i, home, score),
                                 float(cpu[i]))
            nodes = [got.node if got is not None else _place_one(snap, s, book, i, home,
                                                                   cpu, need)]
            why = f"; {got.detail}" if got is not None else ""
        else:
            nodes = [_place_one(snap, s, book, i, home, cpu, need)]
        for j, dst in zip(group, nodes, strict=True):
            c = snap.clients[j]
            home[j] = dst
            book.take(dst, float(cpu[j]), c.reservation, int(need[j]))
            done.add(j)
            detail = f"cpu {cpu[j]:.2f} cores, mem {need[j]} pages" + (
                f", with {len(group) - 1} sibling slice(s)" if len(group) > 1 else "") + why
            decision.actions.append(SetHome(c.id, -1, dst, Reason.INITIAL, 0.0, detail))
            decision.considered.append(Considered(c.id, -1, dst, Reason.INITIAL, 0.0,
                                                  "taken"))


def _scores(snap: Snapshot, s: Settings, book: _Ledger, i: int, cpu: np.ndarray,
            need: np.ndarray, memory_terms: bool = True) -> np.ndarray:
    topo = snap.topology
    c = snap.clients[i]
    score = headroom(topo.cores, book.used, topo.mem_pages, book.free, float(cpu[i]),
                     int(need[i]), s.placement_mem_weight)
    resident = snap.pages[i]
    if memory_terms and resident.sum() > 0:
        frac = resident / resident.sum()
        score = (score + MEMORY_STAY * frac
                 - CLOSENESS_SCALE * MEMORY_PULL * (topo.distance @ frac - LOCAL_DISTANCE))
    allowed = snap.vectors().allowed[i]
    fits = allowed & (book.reserved + c.reservation <= topo.cores + CORE_EPS)
    return np.where(fits if fits.any() else allowed, score, -np.inf)


def _place_one(snap: Snapshot, s: Settings, book: _Ledger, i: int, home: np.ndarray,
               cpu: np.ndarray, need: np.ndarray) -> int:
    """Best node for one client; a slice whose siblings already run is drawn to them."""
    score = _near_siblings(snap, s, i, home, _scores(snap, s, book, i, cpu, need))
    return int(np.argmax(score))


def _near_siblings(snap: Snapshot, s: Settings, i: int, home: np.ndarray,
                   score: np.ndarray) -> np.ndarray:
    """``score`` less the distance to the client's placed vNUMA siblings, if any."""
    vm = snap.vectors().vm
    if vm[i] >= 0:
        sib = np.flatnonzero((vm == vm[i]) & (home >= 0))
        if sib.size:
            dist = snap.topology.distance[:, home[sib]].mean(axis=1) - LOCAL_DISTANCE
            score = score - CLOSENESS_SCALE * s.wide_distance_weight * dist
    return score


def _place_set(snap: Snapshot, s: Settings, book: _Ledger, group: list[int],
               cpu: np.ndarray, need: np.ndarray) -> list[int]:
    """Nodes for the slices of one wide VM: around the best anchor node, nearest first."""
    dist = snap.topology.distance
    best: tuple[float, list[int]] | None = None
    for anchor in range(snap.topology.n):
        trial = _Ledger.__new__(_Ledger)
        trial.used, trial.reserved, trial.free = (book.used.copy(), book.reserved.copy(),
                                                  book.free.copy())
        nodes, total = [], 0.0
        for j in group:
            score = _scores(snap, s, trial, j, cpu, need)
            # near the anchor first; each SLIT unit away costs like a slice's closeness
            away = dist[anchor] - LOCAL_DISTANCE
            score = score - CLOSENESS_SCALE * s.wide_distance_weight * away
            if nodes:
                score[nodes] -= OVERLOAD_PENALTY   # one slice per node while others fit
            k = int(np.argmax(score))
            if not np.isfinite(score[k]):
                break
            nodes.append(k)
            total += float(score[k])
            trial.take(k, float(cpu[j]), snap.clients[j].reservation, int(need[j]))
        if len(nodes) == len(group) and (best is None or total > best[0] + SCORE_EPS):
            best = (total, nodes)
    if best is None:
        return [int(np.argmax(_scores(snap, s, book, j, cpu, need))) for j in group]
    return best[1]
