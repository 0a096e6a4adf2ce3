"""Scenario "workload": groups of workers under one balancer, sampled until settled.

Parameters (JSON)::

    {"worker": "/path/hn-worker",
     "balancer": {"kind": "homenode"|"numad"|"autonuma"|"none", ...},  # see balancers.make
     "order": "balancer_first" | "workload_first",
     "groups": [{"count": 2, "mib": 64, "tag": "managed", "touch_node": 0,
                 "touch_cpus": [0], "run_cpus": "all", "idle": false, "delay_s": 0,
                 "pause_s": 0, "displace": false, "settle": false, "bind_home_of": null}],
     "duration_s": 60, "sample_s": 0.5,
     "stop_when_local": true, "local_tags": ["managed"], "settle_s": 3,
     "sched_trace": false}

* ``balancer_first``: the balancer is started and ready before any worker exists (a daemon
  that is already running when the workload arrives); t0 is when the first groups' workers
  have touched their memory.
* ``workload_first``: the workers are started and have touched their memory (where
  ``touch_node``/``touch_cpus`` put it) before the balancer starts; t0 is when the balancer
  is ready, so homenode's start-up (Python and NumPy imports, seconds under TCG) is not
  counted against it; ``ready_s`` records it.

Groups start in order; ``pause_s`` waits that long before starting the group (before t0),
and groups with ``delay_s`` > 0 start that long after t0.  A ``displace`` group's workers
are, once homenode has homed them, moved whole to the next node (displace.py), so homenode
has remote memory to migrate back; t0 is then after the displacement.  A ``settle`` group's
workers are waited for until homenode has homed them and their memory is ≥ 95 % local.  A
``bind_home_of: k`` group is bound (touch and run) to the CPUs of the node where group k's
first worker is homed: a hog that makes homenode move that worker away.

With ``stop_when_local`` the run ends ``settle_s`` after every worker tagged in
``local_tags`` has held ≥ 95 % locality for analysis.HOLD_S (and every delayed group has
started; with ``balanced_nodes`` N, and the workers are spread evenly over N nodes); else at
``duration_s``.  With ``wait_for_move`` too, only samples after the
first one where a tagged worker is below 95 % count (the run waits for the balancer to
move something, then for it to settle).  With ``sched_trace`` the result also holds the
scheduler's task-move trace of the workers from t0 on (schedtrace.py).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from homenode_qemu import analysis
from homenode_qemu.guest import balancers, displace, observe, procs, schedtrace
from homenode_qemu.guest.sampler import Sampler

RUNDIR = Path("/tmp/workers")
BALDIR = Path("/tmp/balancer")
CHECK_S = 0.5       # how often the main loop looks at the samples


def start_group(binary: str, g: dict[str, Any], wait: bool) -> list[procs.Worker]:
    ws = [procs.start(binary, g["mib"], rundir=RUNDIR, tag=g.get("tag", "managed"),
                      touch_cpus=g.get("touch_cpus"), touch_node=g.get("touch_node"),
                      run_cpus=g.get("run_cpus"), idle=g.get("idle", False), wait=False)
          for _ in range(g.get("count", 1))]
    if wait:
        procs.wait_ready(ws)
    return ws


def run(p: dict[str, Any]) -> dict[str, Any]:
    """Run the scenario; on failure, stop everything and put the balancer's log in the error."""
    state: dict[str, Any] = {}
    try:
        return _run(p, state)
    except Exception as e:
        log = ""
        if "bal" in state:
            with contextlib.suppress(Exception):
                log = str(state["bal"].stop().get("log", ""))[-4000:]
        for w in state.get("workers", []):
            with contextlib.suppress(Exception):
                w.proc.kill()
        raise RuntimeError(f"{type(e).__name__}: {e}\n--- balancer log (tail) ---\n{log}") from e


def _run(p: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    binary = p["worker"]
    workers: list[procs.Worker] = []
    state["workers"] = workers

    def workers_stime() -> float:
        total = 0.0
        for w in workers:
            with contextlib.suppress(OSError):
                total += observe.proc_stat(w.pid).stime_s
        return total

    bal = balancers.make(p["balancer"], BALDIR, workers_stime)
    state["bal"] = bal
    node_cpus = {str(n): c for n, c in observe.node_cpus().items()}
    cpu_node = analysis.cpu_to_node(node_cpus)
    groups = p["groups"]
    now_groups = [g for g in groups if not g.get("delay_s")]
    later = sorted((g for g in groups if g.get("delay_s")), key=lambda g: g["delay_s"])
    ready_s = numpy_s = None
    to_displace: list[procs.Worker] = []

    nodes = {int(n): c for n, c in node_cpus.items()}
    started: list[list[procs.Worker]] = []

    def start_now_groups() -> None:
        nonlocal workers
        for g in now_groups:
            time.sleep(g.get("pause_s", 0))
            if g.get("bind_home_of") is not None:
                home = displace.home_node(started[g["bind_home_of"]][0].pid, nodes)
                g = dict(g, touch_cpus=nodes[home], run_cpus=nodes[home])
            new = start_group(binary, g, wait=False)
            started.append(new)
            workers += new
            if g.get("displace"):
                to_displace.extend(new)
            if g.get("settle"):
                procs.wait_ready(new)
                for w in new:
                    displace.wait_homed_local(w.pid, w.addr, nodes)
        procs.wait_ready(workers)

    if p.get("order", "balancer_first") == "balancer_first":
        bal.start()
        ready_s = bal.ready()
        start_now_groups()
    else:
        start_now_groups()
        if p.get("time_numpy"):
            numpy_s = _time_numpy_import()      # same guest, same load as the start-up
        bal.start()
        ready_s = bal.ready()
    displaced = []
    for w in to_displace:
        home = displace.wait_homed(w.pid, nodes)
        if home is None:
            raise RuntimeError(f"worker {w.pid} was never homed (affinity "
                               f"{procs.affinity(w.pid)})")
        dst = sorted(nodes)[(sorted(nodes).index(home) + 1) % len(nodes)]
        displaced.append(dict(displace.displace(w.pid, w.addr, dst, sorted(nodes)),
                              home=home))
    trace = schedtrace.start() if p.get("sched_trace") else None
    t0 = time.monotonic()
    cpu_at_t0 = bal.cpu_s()     # homenode's start-up (imports) is not its balancing work
    sampler = Sampler(p.get("sample_s", 0.5))
    sampler.track(*workers)
    sampler.start(t0)

    tags = p.get("local_tags")
    duration = p.get("duration_s", 60.0)
    settle = p.get("settle_s", 3.0)
    reached = None
    while (t := time.monotonic() - t0) < duration:
        while later and t >= later[0]["delay_s"]:
            new = start_group(binary, later.pop(0), wait=True)
            workers += new
            sampler.track(*new)
        if p.get("stop_when_local") and not later:
            samples = list(sampler.samples)
            if p.get("wait_for_move"):
                samples = _after_disturbance(samples, cpu_node, tags)
            every = {str(w.pid) for w in workers if tags is None or w.tag in tags}
            reached = analysis.time_to_local(samples, cpu_node, tags=tags,
                                             balanced_nodes=p.get("balanced_nodes"),
                                             workers=every)
            if reached is not None and t >= reached + analysis.HOLD_S + settle:
                break
        time.sleep(CHECK_S)
    balancer_cpu = bal.cpu_s()
    samples = sampler.stop()
    if trace is not None:       # before the workers exit: their /proc/PID/sched
        trace = schedtrace.stop([w.pid for w in workers], trace)
    bal_out = bal.stop()
    finals = [dict(w.stop(), tag=w.tag) for w in workers]
    return {"node_cpus": node_cpus, "t_end": round(time.monotonic() - t0, 3),
            "ready_s": ready_s, "numpy_import_s": numpy_s,
            "balancer": p["balancer"]["kind"], "displaced": displaced,
            "balancer_cpu_s": round(balancer_cpu - cpu_at_t0, 3),
            "balancer_startup_cpu_s": round(cpu_at_t0, 3), "balancer_out": bal_out,
            "workers": finals, "samples": samples,
            **({"sched_trace": trace} if trace is not None else {})}


def _time_numpy_import() -> float:
    """Wall seconds of ``python -c "import numpy"`` (the reference for a fast start)."""
    t = time.monotonic()
    subprocess.run([sys.executable, "-c", "import numpy"], check=True, timeout=300)
    return round(time.monotonic() - t, 3)


def _after_disturbance(samples: list[dict[str, Any]], cpu_node: dict[int, int],
                       tags: list[str] | None) -> list[dict[str, Any]]:
    for i, s in enumerate(samples):
        ls = analysis.localities(s, cpu_node, tags)
        if ls and min(ls.values()) < analysis.LOCAL_TARGET:
            return samples[i:]
    return []
