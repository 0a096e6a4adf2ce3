"""Optional scheduler tracing for the "workload" scenario (``"sched_trace": true``).

Turns on the scheduler's task-move tracepoints before t0 -- ``sched_migrate_task`` (every
move of a task between CPUs, whoever made it) and AutoNUMA's own ``sched_move_numa``,
``sched_swap_numa`` and ``sched_stick_numa`` -- and, at the end, returns the trace lines
that name a worker, each worker's ``/proc/PID/sched`` (nr_migrations, numa_scan_seq,
numa_preferred_nid, sum_exec_runtime ...) and the NUMA-balancing knobs in debugfs, so a
host-side reader can tell the load balancer's moves from AutoNUMA's.
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from typing import Any

TRACEFS = Path("/sys/kernel/tracing")
DEBUGFS = Path("/sys/kernel/debug")
EVENTS = ("sched/sched_migrate_task", "sched/sched_move_numa", "sched/sched_swap_numa",
          "sched/sched_stick_numa")
BUFFER_KB = 8192


def _mount(kind: str, where: Path) -> None:
    if not (where / ("trace" if kind == "tracefs" else "sched")).exists():
        subprocess.run(["mount", "-t", kind, "nodev", str(where)], check=False,
                       capture_output=True, timeout=10)


def start() -> dict[str, Any]:
    out: dict[str, Any] = {"events": []}
    try:
        _mount("tracefs", TRACEFS)
        (TRACEFS / "tracing_on").write_text("0")
        (TRACEFS / "buffer_size_kb").write_text(str(BUFFER_KB))
        (TRACEFS / "trace").write_text("")
        for e in EVENTS:
            p = TRACEFS / "events" / e / "enable"
            if p.exists():
                p.write_text("1")
                out["events"].append(e)
        (TRACEFS / "tracing_on").write_text("1")
    except OSError as e:
        out["error"] = f"{type(e).__name__}: {e}"
    return out


def stop(pids: list[int], state: dict[str, Any]) -> dict[str, Any]:
    out = dict(state)
    names = [f"pid={p} " for p in pids] + [f"src_pid={p} " for p in pids] + \
            [f"dst_pid={p} " for p in pids]
    try:
        (TRACEFS / "tracing_on").write_text("0")
        lines = (TRACEFS / "trace").read_text(errors="replace").splitlines()
        out["lines"] = [ln for ln in lines if any(n in ln + " " for n in names)]
        out["lost_or_header"] = [ln for ln in lines if ln.startswith("#")][:12]
    except OSError as e:
        out["error"] = f"{type(e).__name__}: {e}"
    sched = {}
    for p in pids:
        with contextlib.suppress(OSError):
            sched[str(p)] = Path(f"/proc/{p}/sched").read_text(errors="replace")
    out["proc_sched"] = sched
    knobs = {}
    with contextlib.suppress(OSError):
        _mount("debugfs", DEBUGFS)
        for f in sorted((DEBUGFS / "sched" / "numa_balancing").glob("*")):
            with contextlib.suppress(OSError):
                knobs[f.name] = f.read_text().strip()
    out["numa_balancing_knobs"] = knobs
    return out
