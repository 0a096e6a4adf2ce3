"""The churn soak of issue 7, in a two-node QEMU guest: 10 minutes of processes started
and killed continuously (at least 1000; some in the middle of a migration) while
`homenode run` manages them.  Prints the figures:

    python bench/soak.py                      # 10 min (and on until 1000 processes)
    python bench/soak.py --duration 120 --min-processes 0 --json /tmp/soak.json

Needs the QEMU harness (tools/qemu/ci-setup.sh, docs/qemu.md).  The guest program and
the figures are homenode_qemu/guest/soak.py and homenode_qemu/soak.py in tools/qemu (the
CI runs a one-minute version: tests/reliability/test_qemu_reliability.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from homenode_qemu import soak as q


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=q.LONG_SOAK["duration_s"])
    ap.add_argument("--min-processes", type=int, default=q.LONG_SOAK["min_processes"])
    ap.add_argument("--max-duration", type=float, default=q.LONG_SOAK["max_duration_s"])
    ap.add_argument("--pool", type=int, default=q.LONG_SOAK["pool"])
    ap.add_argument("--seed", type=int, default=q.LONG_SOAK["seed"])
    ap.add_argument("--json", type=Path, help="also write the figures and the raw result")
    a = ap.parse_args()
    missing = q.assets.missing()
    if missing:
        print(f"QEMU guest unavailable: {missing}", file=sys.stderr)
        return 2
    params = {**q.LONG_SOAK, "duration_s": a.duration, "min_processes": a.min_processes,
              "max_duration_s": max(a.duration, a.max_duration), "pool": a.pool,
              "seed": a.seed}
    # A share folder of its own: the harness prunes its runs folder to the newest 20,
    # and other runs may start during these 10-15 minutes.
    share = Path(tempfile.mkdtemp(prefix="homenode-soak-"))
    t0 = time.monotonic()
    run = q.soak(params, share=share)
    wall = time.monotonic() - t0
    r = run.result or {}
    if not run.ok or "error" in r:
        print(run.why(), file=sys.stderr)
        print(r.get("traceback", ""), file=sys.stderr)
        return 1
    f = q.soak_figures(r)
    width = max(map(len, f))
    print(f"churn soak in a 2-node guest ({wall:.0f} s wall, homenode ready after "
          f"{r['ready_s']} s; guest files in {share})")
    for k, v in f.items():
        print(f"  {k:<{width}}  {v}")
    print("  rss_kib over time (s, KiB): " +
          " ".join(f"{t:g}:{kib}" for t, kib in r["rss_kib"]))
    if a.json:
        a.json.write_text(json.dumps({"figures": f, "params": params, "wall_s": wall,
                                      "result": r}, indent=1, default=str))
    bad = (f["crashes"] or f["unhandled_exceptions"] or f["wrong_process_actions"] or
           f["bystanders_touched"] or f["checksum_errors"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
