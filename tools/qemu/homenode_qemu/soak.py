"""Host side of the in-guest reliability runs: parameters, one boot each, the figures.

Used by tests/reliability/test_qemu_reliability.py (the short soak and the crash test)
and by bench/soak.py (the 10-minute soak).  The guest program is guest/soak.py; the
harness (tools/qemu, docs/qemu.md) boots the guest.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from homenode_qemu import GuestRun, assets, run_guest, two_nodes

GUEST = Path(__file__).resolve().parent / "guest" / "soak.py"
TOOLS = Path(__file__).resolve().parents[1]          # tools/qemu: the guest's PYTHONPATH
REPO = TOOLS.parents[1]
MEM_PER_NODE_MIB = 768
BOOT_AND_START_S = 150       # boot, Python + NumPy start-up under TCG, shutdown: margin

# Churn: a pool of managed workers, each killed after a random lifetime (the tick is
# 0.25 s, so most are homed first); a quarter (16 MiB) get their memory moved away once
# homed and are killed 0.5-3 s later, while homenode migrates it back at 2048 pages/s
# (about 2 s for all of it); a tenth of the freed PIDs go at once to a bystander.  Mostly
# idle workers (they check their pages, rarely rewrite them): busy ones would take the
# guest's two vCPUs from homenode and the judge.
CHURN = {"pool": 8, "lifetime_s": [0.4, 1.6], "displace_fraction": 0.25,
         "migrating_kill_s": [0.5, 3.0], "page_mig_rate_max": 2048,
         "idle_fraction": 0.9, "reuse_fraction": 0.1}
SHORT_SOAK = {**CHURN, "duration_s": 60, "seed": 7}
# 10 minutes, and on (up to 15) until 1000 processes were started.
LONG_SOAK = {**CHURN, "duration_s": 600, "min_processes": 1000, "max_duration_s": 900,
             "seed": 11}
CRASH = {"mib": 64, "page_mig_rate_max": 2048, "kill_from": 0.15, "kill_until": 0.7}


def worker() -> str:
    return str(assets.worker_binary(assets.build_dir()))


def run(scenario: str, params: dict[str, Any], timeout_s: float,
        share: Path | None = None, cpus_per_node: int = 1) -> GuestRun:
    argv = [sys.executable, str(GUEST), scenario, "/tmp/share/params.json",
            "/tmp/share/result.json"]
    env = {"PYTHONPATH": f"{TOOLS}:{REPO / 'src'}", "PYTHONDONTWRITEBYTECODE": "1",
           "HOMENODE_QEMU_GUEST": "1"}
    machine = two_nodes(mem_per_node_mib=MEM_PER_NODE_MIB, cpus_per_node=cpus_per_node)
    return run_guest(machine, argv, timeout_s=timeout_s,
                     params={"worker": worker(), **params}, share=share, env=env)


def soak(params: dict[str, Any], share: Path | None = None) -> GuestRun:
    longest = max(params["duration_s"], params.get("max_duration_s", 0))
    return run("soak", params, longest + BOOT_AND_START_S + 60, share)


def crash(params: dict[str, Any] | None = None, share: Path | None = None) -> GuestRun:
    """Two CPUs per node: an operator's pin to one CPU of a node leaves the load per node
    as it was, so the restarted daemon has nothing new to balance."""
    return run("crash", {**CRASH, **(params or {})}, 240, share, cpus_per_node=2)


def soak_figures(r: dict[str, Any]) -> dict[str, Any]:
    """The issue's figures from one soak result."""
    rss = [kib for _, kib in r["rss_kib"] if kib]
    a = r["audit"]
    return {
        "duration_s": r["elapsed_s"],
        "processes_started": r["processes_started"],
        "managed_workers": r["managed_started"],
        "bystanders": r["bystanders_started"],
        "killed_sigkill": r["sigkill"],
        "stopped_sigterm": r["sigterm"],
        "displaced_then_migrated": r["displaced"],
        "killed_mid_migration": r["killed_mid_migration"],
        "crashes": r["crashes"] + (0 if r["homenode_alive_at_end"] else 1),
        "homenode_exit_status": r["homenode_rc"],
        "unhandled_exceptions": a["tracebacks"] + a["internal_errors"],
        "actions_applied": a["actions_applied"],
        "workers_homed_by_homenode": a["processes_homed"],
        "workers_whose_pages_it_moved": a["processes_with_pages_moved"],
        "wrong_process_actions": a["wrong_process_actions"],
        "pid_reused_during_action": a["reused_during_action"],
        "bystanders_touched": r["bystanders_touched"],
        "checksum_errors": r["checksum_errors"],
        "rss_start_mib": round(rss[0] / 1024, 1) if rss else None,
        "rss_end_mib": round(rss[-1] / 1024, 1) if rss else None,
        "rss_max_mib": round(max(rss) / 1024, 1) if rss else None,
        "homenode_cpu_s": r["homenode_cpu_s"],
    }
