"""``homenode run``: the simulator's control loop on the real host.

Start-up: read the config, build the host and the policy, find the first clients,
check privileges (refuse with one line), log the effective settings.  Then
``homenode.loop.run`` with a ``RealClock`` until the duration ends or the stop event is
set (SIGTERM/SIGINT).  On the way out: put back every affinity changed, and write the
run's files when asked.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# np.unique (the policy's, numpy >= 2) imports numpy.ma on its first call: about 1 s of
# one tick under emulation (issue 15's guest profile), here part of the start-up instead.
import numpy as np
import numpy.ma

from homenode import loop
from homenode.errors import HomenodeError
from homenode.linux import privileges
from homenode.linux.actionlog import ActionLog
from homenode.linux.config import Config
from homenode.linux.engine import Engine, shutdown
from homenode.linux.host import LinuxHost, kernel_numa_balancing
from homenode.linux.kernel.errors import ParseError
from homenode.linux.kernel.sysfs import format_cpulist
from homenode.linux.state import StateFile
from homenode.linux.state import default_path as state_default_path
from homenode.metrics import RunRecorder, summarize
from homenode.model import Decision
from homenode.policy import make_policy
from homenode.report import write_run

log = logging.getLogger("homenode.daemon")
# Tick CPU times kept for the percentiles of summary.json: about 11 h of 2 s ticks.
TICK_CPU_KEPT = 20_000


@dataclass
class RunOutcome:
    ticks: int
    seconds: float
    tick_cpu_ms: list[float] = field(default_factory=list)     # the last TICK_CPU_KEPT
    summary: dict[str, Any] | None = None
    host: LinuxHost | None = None
    tick_cpu: TickCpu | None = None
    tick_gap: TickCpu | None = None     # wall time between two ticks' ends (ms)


class TickCpu:
    """CPU time per tick: mean and maximum over every tick, percentiles over the last
    TICK_CPU_KEPT (a daemon that runs for months must not keep a number per tick)."""

    def __init__(self) -> None:
        self.recent: deque[float] = deque(maxlen=TICK_CPU_KEPT)
        self.n = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, ms: float) -> None:
        self.recent.append(ms)
        self.n += 1
        self.total += ms
        self.max = max(self.max, ms)

    def stats(self) -> dict[str, float | None]:
        out = tick_cpu_stats(list(self.recent))
        if self.n:
            out["mean"] = round(self.total / self.n, 3)
            out["max"] = round(self.max, 3)
        return out


@contextlib.contextmanager
def _loop_priority(nice: int) -> Iterator[None]:
    """The calling thread (the loop; threads it starts inherit it) at ``daemon.nice``
    while the daemon runs, by default the copiers' -10: a tick is milliseconds of CPU,
    but at the clients' priority it waits behind them (and behind the copiers it feeds)
    on CPUs they keep busy, and the gap between ticks grows (docs/engine.md, "tick
    gap").  The thread's own nice comes back after (``run`` may be called in-process)."""
    tid = threading.get_native_id()
    before = os.getpriority(os.PRIO_PROCESS, tid)
    if nice != before:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        except OSError as e:            # below 0 needs CAP_SYS_NICE: run at our own
            log.info("cannot set the control loop's nice to %d: %s; running at %d",
                     nice, e.strerror, before)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, tid, before)


def run(cfg: Config, **kw: Any) -> RunOutcome:
    """Run the daemon (``_run``'s arguments) with its loop at ``daemon.nice``."""
    with _loop_priority(cfg.daemon.nice):
        return _run(cfg, **kw)


def _run(cfg: Config, *, duration: float = 0.0, once: bool = False, out: Path | None = None,
        plots: bool = True, stop: threading.Event | None = None, proc_root: str = "/proc",
        sys_root: str | Path = "/sys", cgroup_root: Path | None = None,
        recorders: Sequence[loop.Recorder] = (),
        wrap_host: Callable[[LinuxHost], Any] | None = None) -> RunOutcome:
    """Run the daemon; returns when ``duration`` has passed (0: until ``stop``).

    ``recorders`` are fed every decision and sample besides the action log (the status
    API, an exporter); ``wrap_host`` may wrap the host the loop drives (to time ticks)."""
    stop = stop or threading.Event()
    clock = loop.RealClock(stop)
    state = open_state(cfg)
    copier = None if cfg.daemon.dry_run else Engine.from_settings(cfg.settings, proc_root)
    host = LinuxHost(cfg, clock, proc_root=proc_root, sys_root=sys_root,
                     cgroup_root=cgroup_root, state=state, engine=copier)
    policy = GuardedPolicy(make_policy(cfg.daemon.policy, cfg.settings))
    try:
        host.prime()
        privileges.check(host, cfg.daemon.dry_run, proc_root)
        _log_start(cfg, host, proc_root)
    except (OSError, ParseError) as e:
        # Before the first tick nothing has been changed: refuse to start, in one line.
        if state is not None:
            state.unlock()
        raise HomenodeError(f"cannot start: {e}") from None

    recorder = RunRecorder() if out is not None else None
    # the loop thread's own CPU: the migration engine's copiers are not the tick
    cpu, gap = TickCpu(), TickCpu()
    last = [time.thread_time(), -1.0]

    def on_tick(_t: float) -> None:
        now, wall = time.thread_time(), time.monotonic()
        cpu.add(1000.0 * (now - last[0]))
        if last[1] >= 0:
            gap.add(1000.0 * (wall - last[1]))
        last[0], last[1] = now, wall
        if once:
            stop.set()

    t0 = clock.now()
    try:
        ticks = loop.run(wrap_host(host) if wrap_host else host, policy, clock,
                         duration=0.0 if once else duration, interval=cfg.daemon.interval,
                         recorder=loop.Tee(ActionLog(cfg.daemon.dry_run), recorder,
                                           *recorders),
                         stop=stop, on_tick=on_tick)
    finally:
        shutdown(host)
        # --once is a one-shot placement: its homes stay.  Any other exit ends the
        # daemon's promises, so what it changed is put back.
        if cfg.daemon.restore_on_exit and not cfg.daemon.dry_run and not once:
            clients, threads = host.restore()
            log.info("restored the CPU affinity of %d threads (or cpusets) in %d clients",
                     threads, clients)
        if state is not None:
            state.unlock()
    seconds = clock.now() - t0
    outcome = RunOutcome(ticks, seconds, list(cpu.recent), None, host, cpu, gap)
    if out is not None and recorder is not None:
        outcome.summary = _summary(cfg, host, recorder, outcome)
        write_run(Path(out), recorder, outcome.summary, plots=plots)
        log.info("wrote %s/", out)
    return outcome


def open_state(cfg: Config) -> StateFile | None:
    """The state file (docs/reliability.md), locked; None when off, or when another
    homenode holds it.  A dry run reads it (to recognise the homes a previous daemon set)
    but never writes or locks it."""
    if cfg.daemon.state_file == "off":
        return None
    path = state_default_path() if cfg.daemon.state_file == "auto" else Path(cfg.daemon.state_file)
    state = StateFile(path)
    if not cfg.daemon.dry_run and not state.lock():
        return None
    return state


class GuardedPolicy:
    """The policy, kept from stopping the daemon: an exception in ``decide`` (a bug on
    some odd snapshot) is logged -- with its traceback the first time for its type --
    and the tick goes on with no actions.  Changing nothing is always safe."""

    def __init__(self, policy: Any):
        self.policy = policy
        self.failures = 0
        self._seen: set[str] = set()

    def decide(self, snap: Any) -> Decision:
        try:
            return self.policy.decide(snap)
        except Exception as e:      # the daemon must outlive a policy bug
            self.failures += 1
            kind = type(e).__name__
            if kind not in self._seen:
                self._seen.add(kind)
                log.exception("internal error in the policy (%s); no actions this tick",
                              kind)
            return Decision([], [])

    def __getattr__(self, name: str) -> Any:
        return getattr(self.policy, name)


def _log_start(cfg: Config, host: LinuxHost, proc_root: str) -> None:
    topo = host.topology_reader.read().topology
    nodes = ", ".join(f"{nid}: cpus {format_cpulist(c) or '-'}"
                      for nid, c in zip(topo.node_ids, topo.cpus, strict=True))
    d = cfg.daemon
    log.info("homenode run%s: config %s, policy %s, interval %gs, scan %gs, migration %s; "
             "%d nodes (%s); %s", " (dry run)" if d.dry_run else "", cfg.source, d.policy,
             d.interval, d.scan_interval, d.migration, topo.n, nodes,
             privileges.describe())
    if cfg.settings.changed():
        log.info("policy settings: %s", ", ".join(f"{k}={v}" for k, v in
                                                  cfg.settings.changed().items()))
    log.info("%d clients found at start", len(host.procs) + len(host.cgroups))
    if kernel_numa_balancing(proc_root):
        log.warning("the kernel's automatic NUMA balancing is on (kernel.numa_balancing): "
                    "it moves pages too; consider sysctl kernel.numa_balancing=0")


def tick_cpu_stats(ms: list[float]) -> dict[str, float | None]:
    if not ms:
        return {"mean": None, "p50": None, "p95": None, "max": None}
    a = np.asarray(ms)
    return {"mean": round(float(a.mean()), 3), "p50": round(float(np.percentile(a, 50)), 3),
            "p95": round(float(np.percentile(a, 95)), 3), "max": round(float(a.max()), 3)}


def _summary(cfg: Config, host: LinuxHost, rec: RunRecorder, o: RunOutcome) -> dict[str, Any]:
    s = summarize(rec, scenario=f"linux:{socket.gethostname()}", policy=cfg.daemon.policy,
                  seed=0, duration=o.seconds, event_times=[], wall_s=o.seconds,
                  totals={"pages_migrated": host.stats.pages_moved})
    s["sim_speed"] = None            # a real host runs at the speed of time
    if cfg.settings.changed():
        s["settings"] = cfg.settings.changed()
    s["linux"] = {
        "dry_run": cfg.daemon.dry_run, "ticks": o.ticks,
        "interval_s": cfg.daemon.interval,
        "tick_cpu_ms": o.tick_cpu.stats() if o.tick_cpu else tick_cpu_stats(o.tick_cpu_ms),
        "tick_gap_ms": _gap_stats(o.tick_gap),
        "engine_copiers": host.engine.copiers if host.engine else 0,
        "engine_busy_s": round(host.engine.busy_s, 3) if host.engine else None,
        "engine_cpu_s": round(host.engine.cpu_s, 3) if host.engine else None,
        "pages_moved": host.stats.pages_moved, "pages_failed": host.stats.pages_failed,
        "clients_dropped": host.stats.dropped, "errors": dict(host.stats.errors),
        "clients_adopted": host.stats.adopted,
        "reused_during_action": host.stats.reused_during_action}
    return s


def _gap_stats(gap: TickCpu | None) -> dict[str, float | None]:
    """The wall time between ticks: its p99 shows a tick that waited (on a copy)."""
    if gap is None or not gap.recent:
        return {"p50": None, "p99": None, "max": None}
    a = np.asarray(gap.recent)
    return {"p50": round(float(np.percentile(a, 50)), 1),
            "p99": round(float(np.percentile(a, 99)), 1), "max": round(gap.max, 1)}
