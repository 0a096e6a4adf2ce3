"""Two sweep stores side by side: the cases both hold, matched by label, policy and seed.

    python bench/sweep_delta.py OLD_STORE NEW_STORE [--key throughput_vs_ideal]

Prints, per policy, on the cases both stores finished (status "ok" in both): how many,
the median and range of the key in each store, the median and range of new - old, and
how many cases went up, stayed equal (to 4 decimals) and went down.  Then, per store,
how many of those cases each policy wins (the highest key of the label and seed; ties
count for every policy that has the highest value).  A store is a sweep's output
directory (``cases/*/*.json``, one per case, as the sweep writes them); a store still
being filled is read as far as it has got.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

EQUAL = 1e-4        # differences below this (the summaries' 4 decimals) count as equal


def load(store: Path, key: str) -> dict[tuple[str, str, int], float]:
    out: dict[tuple[str, str, int], float] = {}
    for p in sorted(store.glob("cases/*/*.json")):
        try:
            case = json.loads(p.read_text())
        except (OSError, ValueError):
            continue            # being written
        if case.get("status") != "ok":
            continue
        meta, summary = case.get("meta", {}), case.get("summary", {})
        value = summary.get(key)
        if isinstance(value, (int, float)):
            out[(meta["label"], meta["policy"], int(meta["seed"]))] = float(value)
    return out


def wins(rows: dict[tuple[str, str, int], float], policies: list[str]) -> dict[str, int]:
    by_case: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    for (label, policy, seed), v in rows.items():
        by_case[(label, seed)][policy] = v
    out = dict.fromkeys(policies, 0)
    for vals in by_case.values():
        if set(vals) != set(policies):
            continue            # compare only cases where every policy finished
        best = max(vals.values())
        for p, v in vals.items():
            out[p] += v >= best - EQUAL
    return out


def rng(vals: list[float]) -> str:
    return f"{min(vals):.4f}..{max(vals):.4f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--key", default="throughput_vs_ideal")
    args = ap.parse_args(argv)
    old, new = load(args.old, args.key), load(args.new, args.key)
    both = sorted(old.keys() & new.keys())
    if not both:
        print("sweep_delta: the stores share no finished case", file=sys.stderr)
        return 1
    per: dict[str, list[Any]] = defaultdict(list)
    for k in both:
        per[k[1]].append(k)
    policies = sorted(per)
    print(f"{args.key}: {len(both)} (label, policy, seed) cases in both stores "
          f"({args.old} -> {args.new})")
    head = ("policy", "cases", "old median", "old range", "new median", "new range",
            "delta median", "delta range", "up/eq/down")
    print("  ".join(f"{h:>15}" for h in head))
    for p in policies:
        o = [old[k] for k in per[p]]
        n = [new[k] for k in per[p]]
        d = [b - a for a, b in zip(o, n, strict=True)]
        up = sum(x > EQUAL for x in d)
        down = sum(x < -EQUAL for x in d)
        cells = (p, str(len(d)), f"{statistics.median(o):.4f}", rng(o),
                 f"{statistics.median(n):.4f}", rng(n), f"{statistics.median(d):+.4f}",
                 f"{min(d):+.4f}..{max(d):+.4f}", f"{up}/{len(d) - up - down}/{down}")
        print("  ".join(f"{c:>15}" for c in cells))
    shared = {k: v for k, v in old.items() if k in new}
    print("wins (highest of its label and seed, ties to all; cases where every policy "
          "finished in both stores):")
    w_old = wins(shared, policies)
    w_new = wins({k: new[k] for k in shared}, policies)
    for p in policies:
        print(f"  {p:10} old {w_old[p]:4d}   new {w_new[p]:4d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
