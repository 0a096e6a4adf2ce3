"""bench/tick_cost.py (issue 15's instrument for the loop's own CPU per tick) runs and
prints its table: the real snapshot of this host's /proc and /sys and the policy's decide."""

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "tick_cost.py"


def test_tick_cost_prints_every_cell():
    out = subprocess.run([sys.executable, str(BENCH), "--rounds", "1", "--ticks", "5"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    for cell in ("snapshot", "decide: imbalance4 x3", "decide: burst 2x16"):
        assert f"| {cell}" in out, out
