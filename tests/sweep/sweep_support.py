"""Self-made trace files and specs for the sweep tests (tiny: a case simulates 60 s)."""

from __future__ import annotations

import math
from pathlib import Path

HEADER = ";\t".join((
    "Timestamp [ms]", "CPU cores", "CPU capacity provisioned [MHZ]", "CPU usage [MHZ]",
    "CPU usage [%]", "Memory capacity provisioned [KB]", "Memory usage [KB]",
    "Disk read throughput [KB/s]", "Disk write throughput [KB/s]",
    "Network received throughput [KB/s]", "Network transmitted throughput [KB/s]"))
T0 = 1_372_629_600
DAY_SAMPLES = 12          # a "day" of 12 samples of 300 s, replayed at 5 s: 60 s per case


def write_bitbrains(root: Path, n_vms: int = 6, days: int = 3, sub: str = "bb") -> Path:
    """``n_vms`` VM files of ``days`` x DAY_SAMPLES samples; VM k has 2 + k % 3 cores,
    a busy phase that moves through the day, and 1-3 GiB of active memory."""
    d = root / sub
    d.mkdir(parents=True, exist_ok=True)
    for k in range(n_vms):
        cores = 2 + k % 3
        lines = [HEADER]
        for i in range(days * DAY_SAMPLES):
            pct = 20 + 70 * (0.5 + 0.5 * math.sin(2 * math.pi * (i + 3 * k) / DAY_SAMPLES))
            mem_kib = (1 + k % 3) * 1024 * 1024 - 1000 * (i % 7)
            lines.append(";\t".join(str(x) for x in (
                T0 + 300 * i, cores, 2600.0 * cores, 26.0 * cores * pct, round(pct, 3),
                16777216.0, float(mem_kib), 0.0, 1.0, 1.0, 1.0)))
        (d / f"{k + 1}.csv").write_text("\n".join(lines) + "\n")
    return d


def spec_text(*, shapes: str = '["small"]', days: str = "", extra: str = "",
              policies: str = '["esxi", "static"]', scenarios: str = "",
              memory: str = "8GiB") -> str:
    return f"""
name = "tiny"
policies = {policies}

[shapes.small]
nodes = 2
cores_per_node = 4
memory_per_node = "{memory}"

[shapes.wide]
sockets = 2
nodes_per_socket = 2
cores_per_node = 2
memory_per_node = "{memory}"
distance_socket = 12
distance_remote = 32

[[traces]]
name = "bb"
format = "bitbrains"
files = "bb/*.csv"
shapes = {shapes}
day_samples = {DAY_SAMPLES}
step = "5s"
start_every = "100ms"
{days}
{extra}
{scenarios}
"""


def write_spec(path: Path, traces: Path, **kw: str) -> Path:
    path.write_text(f'traces_dir = "{traces}"\n' + spec_text(**kw))
    return path


def homenode(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
             timeout: float = 600) -> tuple[int, str, str]:
    """Run the `homenode` command of this interpreter's environment."""
    import os
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("homenode")
    argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "homenode"]
    p = subprocess.run([*argv, *args], capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, **(env or {})}, cwd=cwd)
    return p.returncode, p.stdout, p.stderr
