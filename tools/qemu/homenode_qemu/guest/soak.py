"""Inside a QEMU guest (issue 7): the churn soak, and a crash in the middle of a migration.

Run by ``homenode_qemu.soak.run`` as ``python guest/soak.py SCENARIO PARAMS RESULT``
with PYTHONPATH holding tools/qemu (the harness's in-guest helpers: workers, the
``numa_maps`` observer, ``migrate_pages``) and src.  The judge does not share code with the
judged: it reads /proc itself and keeps its own book of every process it started, by PID
and start time.

soak: homenode runs (workers tagged ``managed`` are its clients, by command line) while
processes are started and killed continuously; some managed workers have their memory
moved to the other node once homed, so that homenode migrates it back, and some are
killed while it does; some killed workers' PIDs are given at once to *bystanders* that
homenode must never touch.  Figures: processes started, kills mid-migration, homenode's
exit status and tracebacks, actions whose (PID, start time) is not a managed worker's,
bystanders touched, checksum errors, homenode's RSS over the run.

crash: a 64 MiB worker is homed, its memory moved away, and homenode SIGKILLed while it
migrates it back; a second worker is re-bound by "an operator" while homenode is down; a
third is left alone.  homenode is restarted: it must adopt the first and third (same
home, migration carried on, not undone nor repeated) and leave the second alone, and on
SIGTERM put back the masks the first daemon found.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from homenode_qemu.guest import displace, observe, procs
from homenode_qemu.guest.balancers import to_toml
from homenode_qemu.guest.result import run_and_write

RUNDIR = Path("/tmp/workers")
WORK = Path("/tmp/hn")
STATE = Path("/run/homenode/daemon.json")
READY_PATTERN = "clients found at start"
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
LOOP_S = 0.05                # the churn loop's period
CHECK_S = 1.0                # how often bystanders are checked
RSS_EVERY_S = 5.0
MID_FRACTION = 0.05          # a kill is "mid-migration" with >= 5 % of pages on each node
BYSTANDER_MOVED_PAGES = 8    # pages off node 0 that count as a bystander touched


# --- homenode ---------------------------------------------------------------------------------

class Daemon:
    """``homenode run`` with a config, JSON logs to a file (appended across restarts)."""

    def __init__(self, config: dict[str, dict[str, Any]]) -> None:
        WORK.mkdir(parents=True, exist_ok=True)
        self.config = WORK / "homenode.toml"
        self.config.write_text(to_toml(config))
        self.log_path = WORK / "homenode.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> float:
        exe = Path(sys.executable).with_name("homenode")
        argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "homenode"]
        mark = len(self.log())
        t0 = time.monotonic()
        self.proc = subprocess.Popen([*argv, "run", "--config", str(self.config),
                                      "--log-format", "json"], stdin=subprocess.DEVNULL,
                                     stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT)
        while READY_PATTERN not in self.log()[mark:]:
            if self.proc.poll() is not None:
                raise RuntimeError(f"homenode exited with {self.proc.returncode} at start:"
                                   f"\n{self.log()[-3000:]}")
            if time.monotonic() - t0 > READY_TIMEOUT_S:
                raise TimeoutError(f"homenode not ready:\n{self.log()[-3000:]}")
            time.sleep(0.05)
        return round(time.monotonic() - t0, 2)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kib(self) -> int | None:
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        return next((int(line.split()[1]) for line in text.splitlines()
                     if line.startswith("VmRSS:")), None)

    def cpu_s(self) -> float:
        return observe.tree_cpu_s(self.pid) if self.alive() else 0.0

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.alive():
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def save_log(log: str) -> None:
    """The whole log into the share folder, for the host (the guest's /tmp is gone after)."""
    Path("/tmp/share/homenode.log").write_text(log)


def audit(log: str, managed: set[tuple[int, int]]) -> dict[str, Any]:
    """Every applied action's target (PID@start time) must be a managed worker's."""
    actions = wrong = lines = errors = 0
    wrong_examples: list[str] = []
    homed: set[str] = set()
    moved: set[str] = set()
    for line in log.splitlines():
        lines += 1
        try:
            rec = json.loads(line)
        except ValueError:
            continue                      # not a log record (a stray print)
        if rec.get("level") in ("error", "critical"):
            errors += 1
        if rec.get("logger") != "homenode.actions" or not rec.get("ok"):
            continue
        actions += 1
        target = str(rec.get("target", ""))
        (homed if rec.get("kind") == "home" else moved).add(target)
        pid, _, start = target.partition("@")
        if not (pid.isdigit() and start.isdigit()) or (int(pid), int(start)) not in managed:
            wrong += 1
            if len(wrong_examples) < 5:
                wrong_examples.append(line[:300])
    return {"log_lines": lines, "actions_applied": actions, "wrong_process_actions": wrong,
            "processes_homed": len(homed), "processes_with_pages_moved": len(moved),
            "wrong_examples": wrong_examples, "error_lines": errors,
            "tracebacks": log.count("Traceback"), "internal_errors": log.count("internal error"),
            "reused_during_action": log.count("was reused during an action")}


def homenode_config(p: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"daemon": {"interval": p.get("interval", "0.25s"),
                       "scan_interval": p.get("interval", "0.25s"),
                       "numa_maps_interval": "1s"},
            "processes": {"auto": False, "vms": False,
                          "cmdline": [r"hn-worker .*--tag managed"]},
            "settings": {"rebalance_period": 0.5, "min_residence": 2.0,
                         "page_mig_delay": 0.25,
                         "page_mig_rate_max": p.get("page_mig_rate_max", 4096)}}


# --- the judge's own book ----------------------------------------------------------------------

def start_ticks(pid: int) -> int | None:
    try:
        return observe.proc_stat(pid).start_ticks
    except (OSError, ValueError, IndexError):
        return None


def split(pages: dict[int, int]) -> bool:
    total = sum(pages.values())
    return total > 0 and sum(v >= MID_FRACTION * total for v in pages.values()) >= 2


class Bystander:
    def __init__(self, w: procs.Worker, all_cpus: list[int], until: float) -> None:
        self.w = w
        self.pid = w.pid
        self.start = start_ticks(w.pid)
        self.until = until
        self.all_cpus = all_cpus
        mine, _ = observe.numa_maps(w.pid, w.addr)
        self.pages0 = mine.get(0, 0)
        self.affinity_changes: list[list[int]] = []
        self.pages_moved = 0

    def check(self) -> None:
        """Its affinity and pages -- only while the PID is still this very bystander
        (start time read before and after): once it has exited, the PID may be anyone's."""
        if not self.w.alive() or start_ticks(self.pid) != self.start:
            return
        try:
            aff = procs.affinity(self.pid)
            mine, _ = observe.numa_maps(self.pid, self.w.addr)
        except OSError:
            return
        if start_ticks(self.pid) != self.start:
            return
        if aff != self.all_cpus and aff not in self.affinity_changes:
            self.affinity_changes.append(aff)
        self.pages_moved = max(self.pages_moved, self.pages0 - mine.get(0, 0))

    def touched(self) -> bool:
        return bool(self.affinity_changes) or self.pages_moved > BYSTANDER_MOVED_PAGES


# --- soak ---------------------------------------------------------------------------------------

def soak(p: dict[str, Any]) -> dict[str, Any]:
    rng = random.Random(p.get("seed", 7))
    binary = p["worker"]
    node_cpus = observe.node_cpus()
    all_cpus = sorted(c for cs in node_cpus.values() for c in cs)
    nodes = sorted(node_cpus)
    hn = Daemon(homenode_config(p))
    ready_s = hn.start()
    rss = [(0.0, hn.rss_kib())]
    cpu0 = hn.cpu_s()
    t0 = time.monotonic()
    end = t0 + p["duration_s"]
    lo, hi = p.get("lifetime_s", [0.3, 3.0])
    live: list[dict[str, Any]] = []
    managed: set[tuple[int, int]] = set()
    bystanders: list[Bystander] = []
    reports: list[dict[str, Any]] = []
    counts = {"managed_started": 0, "bystanders_started": 0, "sigkill": 0, "sigterm": 0,
              "displaced": 0, "killed_mid_migration": 0, "pid_reuse_attempts": 0,
              "crashes": 0}
    next_check = next_rss = 0.0
    for _ in range(p.get("long_bystanders", 2)):
        w = procs.start(binary, 4, rundir=RUNDIR, tag="bystander", touch_node=0, idle=True)
        bystanders.append(Bystander(w, all_cpus, float("inf")))
        counts["bystanders_started"] += 1
    # Run for duration_s, and on (up to max_duration_s) until min_processes were started.
    hard_end = t0 + p.get("max_duration_s", p["duration_s"])
    while time.monotonic() < end or (
            counts["managed_started"] + counts["bystanders_started"] <
            p.get("min_processes", 0) and time.monotonic() < hard_end):
        now = time.monotonic()
        if not hn.alive():
            counts["crashes"] += 1
            break
        while len(live) < p.get("pool", 6):
            big = rng.random() < p.get("displace_fraction", 0.3)
            w = procs.start(binary, p.get("big_mib", 16) if big else p.get("mib", 4),
                            rundir=RUNDIR, tag="managed", wait=False,
                            idle=rng.random() < p.get("idle_fraction", 0.8))
            st = start_ticks(w.pid)
            if st is not None:
                managed.add((w.pid, st))
            counts["managed_started"] += 1
            live.append({"w": w, "displace": big, "displaced_at": None,
                         "kill_at": None if big else now + rng.uniform(lo, hi),
                         "born": now})
        for e in list(live):
            w = e["w"]
            if not w.addr:
                rep = w.report()
                if rep and rep.get("phase") in ("running", "done"):
                    w.addr = int(rep["addr"])
            if e["displace"] and e["displaced_at"] is None:
                home = displace.home_node(w.pid, node_cpus) if w.addr else None
                if home is not None:
                    other = nodes[(nodes.index(home) + 1) % len(nodes)]
                    displace.displace(w.pid, w.addr, other, nodes)
                    e["displaced_at"] = now
                    e["kill_at"] = now + rng.uniform(*p.get("migrating_kill_s", [0.2, 2.0]))
                    counts["displaced"] += 1
                elif now - e["born"] > p.get("homed_timeout_s", 15.0):
                    e["kill_at"] = now          # never homed in time: end it anyway
            if e["kill_at"] is not None and now >= e["kill_at"]:
                live.remove(e)
                reports.append(_end(e, rng, counts))
                if rng.random() < p.get("reuse_fraction", 0.15):
                    counts["pid_reuse_attempts"] += 1
                    b = procs.start_with_pid(w.pid, binary, 2, rundir=RUNDIR, tag="bystander",
                                             touch_node=0, idle=True)
                    if b is not None:
                        counts["bystanders_started"] += 1
                        bystanders.append(Bystander(b, all_cpus,
                                                    now + rng.uniform(*p.get(
                                                        "bystander_life_s", [3.0, 10.0]))))
        if now >= next_check:
            next_check = now + CHECK_S
            for b in bystanders:
                b.check()
                if now >= b.until and b.w.alive():
                    b.w.stop()
        if now >= next_rss:
            next_rss = now + RSS_EVERY_S
            rss.append((round(now - t0, 1), hn.rss_kib()))
        time.sleep(LOOP_S)
    elapsed = time.monotonic() - t0
    rss.append((round(time.monotonic() - t0, 1), hn.rss_kib()))
    for e in live:
        reports.append(_end(e, rng, counts, sig=signal.SIGTERM))
    for b in bystanders:
        b.check()
    cpu_s = hn.cpu_s() - cpu0
    alive_at_end = hn.alive()
    rc = hn.stop()
    by = [{"pid": b.pid, "start": b.start, "affinity_changes": b.affinity_changes,
           "pages_moved": b.pages_moved, **_final(b.w)} for b in bystanders]
    log = hn.log()
    save_log(log)
    checksum_errors = sum(int(r.get("errors") or 0) for r in reports) + \
        sum(int(b.get("errors") or 0) for b in by)
    return {"ready_s": ready_s, "elapsed_s": round(elapsed, 1), **counts,
            "processes_started": counts["managed_started"] + counts["bystanders_started"],
            "homenode_alive_at_end": alive_at_end, "homenode_rc": rc,
            "homenode_cpu_s": round(cpu_s, 2), "rss_kib": rss,
            "audit": audit(log, managed), "bystanders": by,
            "bystanders_touched": sum(1 for b in bystanders if b.touched()),
            "checksum_errors": checksum_errors,
            "workers_with_errors": [r for r in reports if r.get("errors")][:5],
            "log_tail": log[-4000:]}


def _end(e: dict[str, Any], rng: random.Random, counts: dict[str, int],
         sig: int | None = None) -> dict[str, Any]:
    """Kill one managed worker (SIGKILL mostly, SIGTERM sometimes), noting whether its
    memory was split between nodes at that moment, and read its last checksum report."""
    w: procs.Worker = e["w"]
    mid = False
    if e["displaced_at"] is not None and w.addr:
        try:
            mine, _ = observe.numa_maps(w.pid, w.addr)
            mid = split(mine)
        except OSError:
            pass
    sig = sig or (signal.SIGKILL if rng.random() < 0.8 else signal.SIGTERM)
    if sig == signal.SIGKILL:
        w.proc.kill()
        w.proc.wait()
        counts["sigkill"] += 1
        rep = w.report() or {}
        rep["rc"] = w.proc.returncode
    else:
        rep = w.stop()
        counts["sigterm"] += 1
    counts["killed_mid_migration"] += mid
    return {"pid": w.pid, "errors": rep.get("errors"), "rc": rep.get("rc"), "mid": mid}


def _final(w: procs.Worker) -> dict[str, Any]:
    rep = w.stop()
    return {"errors": rep.get("errors"), "rc": rep.get("rc")}


# --- crash ---------------------------------------------------------------------------------------

def crash(p: dict[str, Any]) -> dict[str, Any]:
    binary = p["worker"]
    node_cpus = observe.node_cpus()
    nodes = sorted(node_cpus)
    all_cpus = sorted(c for cs in node_cpus.values() for c in cs)
    hn = Daemon(homenode_config(p))
    ready = [hn.start()]
    a = procs.start(binary, p.get("mib", 64), rundir=RUNDIR, tag="managed", idle=True)
    b = procs.start(binary, 8, rundir=RUNDIR, tag="managed", idle=True)
    c = procs.start(binary, 8, rundir=RUNDIR, tag="managed", idle=True)
    homes = {w.pid: displace.wait_homed_local(w.pid, w.addr, node_cpus) for w in (a, b, c)}
    home_a = homes[a.pid]
    away = nodes[(nodes.index(home_a) + 1) % len(nodes)]
    vm0 = observe.vmstat()
    moved = displace.displace(a.pid, a.addr, away, nodes)
    total = sum(moved["pages"].values())
    # homenode brings A's memory home at page_mig_rate_max: kill it half-way
    samples: list[tuple[float, int, int]] = []
    t0 = time.monotonic()
    at_kill: dict[str, Any] = {}
    while time.monotonic() - t0 < p.get("migrate_timeout_s", 60):
        mine, _ = observe.numa_maps(a.pid, a.addr)
        samples.append((round(time.monotonic() - t0, 2), mine.get(home_a, 0), total))
        if p.get("kill_from", 0.15) * total <= mine.get(home_a, 0) <= \
                p.get("kill_until", 0.7) * total:
            hn.stop(signal.SIGKILL)
            at_kill = {"home_pages": mine.get(home_a, 0), "pages": total,
                       "affinity": {w.pid: procs.affinity(w.pid) for w in (a, b, c)},
                       "state_file": STATE.read_text() if STATE.exists() else None}
            break
        time.sleep(0.1)
    if not at_kill:
        raise RuntimeError(f"never caught A mid-migration: {samples[-10:]}")
    # while no homenode runs: an operator pins B to one CPU of its home node (so the
    # load per node is unchanged: nothing to rebalance); A's pages stay put
    pin = node_cpus[homes[b.pid]][:1]
    for tid in os.listdir(f"/proc/{b.pid}/task"):
        os.sched_setaffinity(int(tid), pin)
    time.sleep(1.0)
    mine, _ = observe.numa_maps(a.pid, a.addr)
    still = mine.get(home_a, 0)
    mark = len(hn.log())
    ready.append(hn.start())
    restart_t = time.monotonic()
    after: list[tuple[float, int]] = []
    a_affinity: set[tuple[int, ...]] = set()
    reached = None
    while time.monotonic() - restart_t < p.get("migrate_timeout_s", 60):
        mine, _ = observe.numa_maps(a.pid, a.addr)
        after.append((round(time.monotonic() - restart_t, 2), mine.get(home_a, 0)))
        a_affinity.add(tuple(procs.affinity(a.pid)))
        if mine.get(home_a, 0) >= 0.95 * total:
            reached = after[-1][0]
            break
        time.sleep(0.2)
    time.sleep(p.get("settle_s", 2.0))
    aff_running = {w.pid: procs.affinity(w.pid) for w in (a, b, c)}
    vm1 = observe.vmstat()
    rc = hn.stop()
    aff_after = {w.pid: procs.affinity(w.pid) for w in (a, b, c)}
    reps = {name: w.stop() for name, w in (("a", a), ("b", b), ("c", c))}
    log = hn.log()
    save_log(log)
    second = log[mark:]                         # what the restarted daemon logged
    return {"ready_s": ready, "nodes": nodes, "all_cpus": all_cpus,
            "pids": {"a": a.pid, "b": b.pid, "c": c.pid},
            "homes": {"a": home_a, "b": homes[b.pid], "c": homes[c.pid]},
            "node_cpus": {str(k): v for k, v in node_cpus.items()},
            "pages_total": total, "before_kill": samples, "at_kill": at_kill,
            "home_pages_while_down": still, "pin_b": pin, "after_restart": after,
            "reached_95_s": reached, "a_affinities_after_restart": sorted(a_affinity),
            "affinity_running": aff_running,
            "affinity_after_exit": aff_after, "homenode_rc": rc,
            "pgmigrate_success": vm1.get("pgmigrate_success", 0) -
            vm0.get("pgmigrate_success", 0),
            "adopted_lines": second.count("from the state file"),
            "rebound_lines": second.count("re-bound by someone else while no homenode ran"),
            "bound_lines": second.count("bound by someone else"),
            "tracebacks": log.count("Traceback"), "workers": reps, "log_tail": log[-6000:]}


SCENARIOS = {"soak": soak, "crash": crash}


def main(argv: list[str]) -> int:
    name, params_path, result_path = argv
    params = json.loads(Path(params_path).read_text())
    return run_and_write(lambda: SCENARIOS[name](params), {"scenario": name}, result_path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
