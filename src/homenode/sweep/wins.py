"""Wins, ties and losses of each policy against each peer, case by case.

Two policies are compared on each instance (a case less its policy: same scenario,
host, day, group, seed and settings) by the throughput they reached: ``throughput_vs_
bound`` when every compared row has it (the honest upper bound), else
``throughput_vs_ideal`` -- the caller is told which.  A ratio within ``TIE`` of 1 is a
tie.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

TIE = 0.002                 # |a / b - 1| at or below this is a tie (0.2 %)
BOUND, IDEAL = "throughput_vs_bound", "throughput_vs_ideal"
ORACLES = ("optimal",)      # bounds, not peers a user would run: left out of "best peer"


@dataclass(frozen=True)
class Tally:
    policy: str
    peer: str
    wins: int
    ties: int
    losses: int
    worst_ratio: float | None
    worst_case: str


def metric(table: list[dict[str, Any]]) -> str:
    ok = [r for r in table if r.get("status") == "ok"]
    if ok and all(r.get(BOUND) is not None for r in ok):
        return BOUND
    return IDEAL


def instance(r: dict[str, Any]) -> str:
    grid = f" {r['grid']}" if r.get("grid") else ""
    return f"{r['label']} seed {r['seed']}{grid}"


def by_instance(table: list[dict[str, Any]], key: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for r in table:
        if r.get("status") == "ok" and r.get(key) is not None:
            out[instance(r)][r["policy"]] = float(r[key])
    return dict(sorted(out.items()))


def tallies(table: list[dict[str, Any]], key: str | None = None) -> list[Tally]:
    key = key or metric(table)
    inst = by_instance(table, key)
    policies = _order({p for v in inst.values() for p in v})
    out = []
    for p in policies:
        for q in policies:
            if p == q:
                continue
            w = t = lo = 0
            worst: tuple[float, str] | None = None
            for name, vals in inst.items():
                if p not in vals or q not in vals or vals[q] <= 0:
                    continue
                ratio = vals[p] / vals[q]
                if abs(ratio - 1) <= TIE:
                    t += 1
                elif ratio > 1:
                    w += 1
                else:
                    lo += 1
                if worst is None or ratio < worst[0]:
                    worst = (ratio, name)
            if w + t + lo:
                out.append(Tally(p, q, w, t, lo, round(worst[0], 4) if worst else None,
                                 worst[1] if worst else ""))
    return out


def _order(policies: set[str]) -> list[str]:
    first = [p for p in ("esxi", "static", "numad", "autonuma", "optimal") if p in policies]
    return first + sorted(policies - set(first))


def best_peer_ratio(vals: dict[str, float], policy: str = "esxi") -> float | None:
    """``policy`` / the best of the other non-oracle policies on one instance."""
    peers = [v for p, v in vals.items() if p != policy and p not in ORACLES]
    if policy not in vals or not peers or max(peers) <= 0:
        return None
    return vals[policy] / max(peers)
