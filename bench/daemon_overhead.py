"""CPU time per tick of `homenode run --dry-run` on this machine with 200 real processes.

Starts the processes itself (small `sleep`s, and Python processes holding some touched
memory that the config makes clients), runs the daemon for --seconds, and prints:

* the daemon's own CPU time per tick (process CPU time between ticks, from summary.json);
* a cross-check from outside: the daemon's total CPU time (rusage) minus the CPU time of a
  `--once` run (start-up + one tick), over the remaining ticks.

Goal: <= 10 ms of CPU per tick.  Everything it started is killed on exit.

    .venv/bin/python bench/daemon_overhead.py [--seconds 60] [--procs 200] [--clients 20]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_MS = 10.0
HOLDER_TAG = "hn-bench-holder"
HOLDER = f"""
import sys, time
tag = {HOLDER_TAG!r}
buf = bytearray(int(sys.argv[1]) << 20)
for i in range(0, len(buf), 4096):
    buf[i] = 1
while True:
    time.sleep(0.5)
"""
HOMENODE = [sys.executable, "-m", "homenode"]


def start_processes(total: int, holders: int, holder_mib: int) -> list[subprocess.Popen]:
    procs = []
    for _ in range(holders):
        procs.append(subprocess.Popen([sys.executable, "-c", HOLDER, str(holder_mib),
                                       HOLDER_TAG], stdin=subprocess.DEVNULL))
    for _ in range(total - holders):
        procs.append(subprocess.Popen(["sleep", "3600"], stdin=subprocess.DEVNULL))
    return procs


def run_daemon(args: list[str]) -> tuple[int, float, str]:
    """(exit status, CPU seconds of the daemon process, stderr)."""
    with tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen([*HOMENODE, *args], stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return p.returncode, usage.ru_utime + usage.ru_stime, err.read()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--interval", default="2s")
    ap.add_argument("--procs", type=int, default=200, help="real processes to start")
    ap.add_argument("--clients", type=int, default=20,
                    help="of which Python processes made clients by the config")
    ap.add_argument("--holder-mib", type=int, default=16, help="memory each client touches")
    a = ap.parse_args()

    procs = start_processes(a.procs, a.clients, a.holder_mib)
    try:
        time.sleep(2.0)                       # let the holders touch their memory
        n_proc = len([d for d in os.listdir("/proc") if d.isdigit()])
        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp) / "bench.toml"
            # auto = true: every scan judges every process against numad's thresholds;
            # vms = false keeps other people's QEMU guests on this machine out of it.
            cfg.write_text(f"[daemon]\ndry_run = true\n[processes]\nauto = true\n"
                           f"vms = false\ncmdline = ['{HOLDER_TAG}']\n")
            out = Path(tmp) / "out"
            rc1, once_cpu, err1 = run_daemon(["run", "--config", str(cfg), "--once"])
            rc, total_cpu, err = run_daemon(
                ["run", "--config", str(cfg), "--interval", a.interval, "--duration",
                 f"{a.seconds}s", "--out", str(out), "--no-plots"])
            if rc != 0 or rc1 != 0:
                print(err1[-2000:] + err[-2000:], file=sys.stderr)
                return 1
            summary = json.loads((out / "summary.json").read_text())
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()

    lx = summary["linux"]
    ticks = lx["ticks"]
    tick = lx["tick_cpu_ms"]
    ext = 1000.0 * (total_cpu - once_cpu) / max(ticks - 1, 1)
    rows = [
        ("processes started", f"{a.procs} ({a.clients} clients, {a.holder_mib} MiB each)"),
        ("processes on the host during the run", str(n_proc)),
        ("clients seen", str(summary["clients_seen"])),
        ("duration / interval", f"{summary['duration_s']:.1f} s / {a.interval}"),
        ("ticks", str(ticks)),
        ("CPU per tick, mean (ms)", f"{tick['mean']:.2f}"),
        ("CPU per tick, p50 (ms)", f"{tick['p50']:.2f}"),
        ("CPU per tick, p95 (ms)", f"{tick['p95']:.2f}"),
        ("CPU per tick, max (ms)", f"{tick['max']:.2f}"),
        ("daemon CPU total (s)", f"{total_cpu:.2f}"),
        ("start-up + one tick, --once (s)", f"{once_cpu:.2f}"),
        ("(total - once) / (ticks - 1) (ms)", f"{ext:.2f}"),
        ("goal", f"<= {GOAL_MS:g} ms per tick: "
                 f"{'met' if tick['mean'] <= GOAL_MS and ext <= GOAL_MS else 'MISSED'}"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"homenode run --dry-run overhead ({os.cpu_count()} CPUs, "
          f"{resource.getpagesize()} B pages)")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
