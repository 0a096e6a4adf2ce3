"""The balancers compared in the guest: homenode, numad, the kernel's own, and none.

Each has ``start()``, ``ready()`` (block until it is running), ``cpu_s()`` (its own CPU
time so far) and ``stop()`` (returns what it left: exit status, log tail, files).

* homenode: ``homenode run --config guest.toml --out DIR`` with the host's venv, the config
  written from the scenario's parameters; stopped with SIGTERM (it restores affinities).
* numad: Debian's binary, unpacked by ci-setup.sh, as a daemon with its defaults.  numad
  re-evaluates a process no sooner than 300 s after the last time, on a clock that starts
  at boot, so in a freshly booted guest it does nothing for 5 minutes; ``clock_offset_s``
  starts it in a time namespace whose CLOCK_MONOTONIC/BOOTTIME are that far ahead
  (``unshare --time --monotonic``), as on a long-running host.
* autonuma: the kernel's NUMA balancing; the guest must be booted with it on.  It has no
  process: its CPU time is spent in the workers' own system time (task_numa_work scans and
  hinting faults run in task context), so ``cpu_s()`` reports the workers' system time.
* none: nothing runs.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from homenode_qemu.guest import observe

# homenode's start-up (Python + NumPy) under TCG: 7-35 s on 2 nodes, 54 s and more on 4
# nodes when it starts beside busy workers (it gets its fair share of the vCPUs)
READY_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 90.0      # homenode writes --out on SIGTERM: slow on a busy 4-node guest
NUMAD_PIDFILE = "/var/run/numad.pid"
NUMAD_LOG = "/var/log/numad.log"
LOG_TAIL = 20000
# homenode logs this right before its first tick (homenode.linux.daemon._log_start)
READY_PATTERN = r"clients found at start"


class Balancer:
    name = "none"

    def start(self) -> None:
        pass

    def ready(self) -> float | None:
        """Seconds it took to become ready (None: no start-up to wait for)."""
        return None

    def cpu_s(self) -> float:
        return 0.0

    def stop(self) -> dict[str, Any]:
        return {}


class Homenode(Balancer):
    name = "homenode"

    def __init__(self, config: dict[str, dict[str, Any]], workdir: Path,
                 ready_pattern: str = READY_PATTERN, extra_args: list[str] | None = None,
                 nice: int = 0, profile: bool = False) -> None:
        self.config = config
        self.nice = nice
        self.profile = profile          # py-spy attached once ready (samples the daemon)
        self.spy: subprocess.Popen | None = None
        self.workdir = workdir
        self.ready_re = re.compile(ready_pattern)
        self.extra = extra_args or []
        self.proc: subprocess.Popen | None = None
        self.t_start = 0.0

    def argv(self) -> list[str]:
        exe = Path(sys.executable).with_name("homenode")
        base = [str(exe)] if exe.exists() else [sys.executable, "-c",
                                                "from homenode.cli import main; main()"]
        prio = ["nice", "-n", str(self.nice)] if self.nice else []
        return [*prio, *base, "run", "--config", str(self.workdir / "guest.toml"),
                       "--out", str(self.workdir / "out"), "--no-plots", *self.extra]

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "guest.toml").write_text(to_toml(self.config))
        self.log_path = self.workdir / "homenode.log"
        self.t_start = time.monotonic()
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT)

    def ready(self) -> float | None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"homenode exited with {self.proc.returncode} at start:\n"
                                   f"{self.log()[-3000:]}")
            if self.ready_re.search(self.log()):
                ready = round(time.monotonic() - self.t_start, 3)
                if self.profile:
                    self._attach_profiler()
                return ready
            time.sleep(0.05)
        raise TimeoutError(f"homenode not ready after {READY_TIMEOUT_S:.0f} s:\n"
                           f"{self.log()[-3000:]}")

    def _attach_profiler(self) -> None:
        """py-spy (pip, in the host's venv) sampling every thread of the daemon, with
        the time threads spend in system calls (--idle: move_pages runs there)."""
        assert self.proc is not None
        spy = Path(sys.executable).with_name("py-spy")
        self.spy = subprocess.Popen(
            [str(spy), "record", "--pid", str(self.proc.pid), "--rate", "50", "--idle",
             "--threads", "--nonblocking", "--format", "raw", "--output",
             str(self.workdir / "profile.txt")],
            stdin=subprocess.DEVNULL, stdout=(self.workdir / "py-spy.log").open("wb"),
            stderr=subprocess.STDOUT)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def cpu_s(self) -> float:
        return observe.tree_cpu_s(self.proc.pid) if self.proc and self.alive() else 0.0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> dict[str, Any]:
        assert self.proc is not None
        cpu = self.cpu_s()
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        profile = None
        if self.spy is not None:
            try:
                self.spy.wait(STOP_TIMEOUT_S)       # it ends with the process it samples
            except subprocess.TimeoutExpired:
                self.spy.kill()
            profile = (_read(self.workdir / "profile.txt") or "") + \
                (_read(self.workdir / "py-spy.log") or "")[-2000:]
        out = self.workdir / "out"
        return {"rc": rc, "cpu_s": round(cpu, 3), "log": self.log()[-LOG_TAIL:],
                "profile": profile,
                "summary": _read(out / "summary.json"),
                "actions_csv": _read(out / "actions.csv")}


class Numad(Balancer):
    name = "numad"

    def __init__(self, binary: str, clock_offset_s: float = 0.0,
                 args: list[str] | None = None) -> None:
        self.binary = binary
        self.offset = clock_offset_s
        self.args = args or []
        self.pid: int | None = None

    def start(self) -> None:
        argv = [self.binary, *self.args]
        if self.offset:
            # --fork: a time namespace applies to children only; numad then daemonizes
            argv = ["unshare", "--fork", "--time", "--monotonic", str(int(self.offset)),
                    "--boottime", str(int(self.offset)), *argv]
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, timeout=STOP_TIMEOUT_S)

    def ready(self) -> float | None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < READY_TIMEOUT_S:
            try:
                self.pid = int(Path(NUMAD_PIDFILE).read_text().split()[0])
                os.kill(self.pid, 0)
                return round(time.monotonic() - t0, 3)
            except (OSError, ValueError, IndexError):
                time.sleep(0.05)
        raise TimeoutError("numad wrote no pid file")

    def cpu_s(self) -> float:
        return observe.tree_cpu_s(self.pid) if self.pid else 0.0

    def stop(self) -> dict[str, Any]:
        cpu = self.cpu_s()
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
        return {"cpu_s": round(cpu, 3), "log": (_read(NUMAD_LOG) or "")[-LOG_TAIL:],
                "uptime_seen_by_numad_s": self.offset}


class KernelBalancing(Balancer):
    """The kernel's NUMA balancing: its cost shows as the workers' system time."""

    name = "autonuma"

    def __init__(self, workers_stime) -> None:
        self.workers_stime = workers_stime      # () -> the workers' system seconds so far
        self.base = 0.0

    def start(self) -> None:
        if Path("/proc/sys/kernel/numa_balancing").read_text().strip() == "0":
            raise RuntimeError("the guest was booted with numa_balancing=disable")
        self.base = self.workers_stime()

    def cpu_s(self) -> float:
        return self.workers_stime() - self.base


def make(spec: dict[str, Any], workdir: Path, workers_stime) -> Balancer:
    kind = spec["kind"]
    if kind == "homenode":
        return Homenode(spec["config"], workdir / "homenode",
                        spec.get("ready_pattern", READY_PATTERN), spec.get("args"),
                        spec.get("nice", 0), spec.get("profile", False))
    if kind == "numad":
        return Numad(spec["binary"], spec.get("clock_offset_s", 0.0), spec.get("args"))
    if kind == "autonuma":
        return KernelBalancing(workers_stime)
    if kind == "none":
        return Balancer()
    raise ValueError(f"unknown balancer {kind!r}")


def to_toml(tables: dict[str, dict[str, Any]]) -> str:
    """A TOML document of flat tables (str, bool, int, float, list of str/int values)."""
    lines = []
    for name, table in tables.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
        lines.append("")
    return "\n".join(lines)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return "'" + v + "'" if "'" not in v and "\n" not in v else _basic_string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML for {v!r}")


def _basic_string(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return None
