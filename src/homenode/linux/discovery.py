"""Which processes and cgroups are clients, from the config's rules.

Every tick a scan lists /proc and reads the stat and command line of PIDs not seen
before, and the stat of one slice of the others: over ``scan_interval`` every process's
stat is read once (a few microseconds each) for the size and CPU thresholds, at an even
cost per tick.  Verdicts are cached per (PID, start time), so a reused PID is judged
afresh (at the latest one scan_interval later).  PID 1, kernel threads and homenode
itself are never clients.  QEMU VMs are recognised by their vCPU threads (``CPU n/KVM``)
or their executable, and named by their ``-name``.  A VM with a guest NUMA topology
becomes one client per guest node (homenode.linux.kinds.vmslice), once its vCPU threads exist.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from homenode.linux import qemu
from homenode.linux.config import Config
from homenode.linux.groups import Labeler
from homenode.linux.guestmem import GuestVm
from homenode.linux.kernel import cgroup, procfs
from homenode.linux.kernel.errors import AccessDenied, ParseError, SysError
from homenode.units import MIB

CLK_TCK = os.sysconf("SC_CLK_TCK")
VCPU_THREAD = re.compile(r"^CPU \d+/(KVM|TCG)$")
QEMU_EXE = re.compile(r"^(qemu(-system-[\w.]+|-kvm)?|kvm)$")
# Verdicts cached per (pid, start time)
_NEVER, _ALWAYS, _THRESHOLD = 0, 1, 2
# A VM with guest NUMA whose vCPU threads are not all there yet (QEMU starting) is looked
# at again every tick, this many times, before it is taken as one client.
VM_WAIT_SCANS = 20


@dataclass(frozen=True)
class ProcessInfo:
    """A process that has become a client, and what discovery learnt about it."""

    pid: int
    start: int            # start time (clock ticks after boot): identity with the PID
    name: str
    why: str              # "pid", "cmdline", "vm" or "auto"
    vm: bool = False
    vcpus: int = 0        # VM: its vCPUs; 0 = count the threads
    mem_bytes: int = 0    # VM: its -m; else resident memory when found
    argv: tuple[str, ...] = ()
    guest: GuestVm | None = None           # a vNUMA slice: the VM's shared state ...
    guest_node: qemu.GuestNode | None = None   # ... and the guest node it is


@dataclass(frozen=True)
class CgroupInfo:
    path: Path
    rel: str              # relative to the cgroup root: the client's id
    name: str


@dataclass
class _Seen:
    start: int
    verdict: int
    why: str
    vm: bool
    cpu_ticks: int
    at: float
    comm: str = ""    # exec changes it: a process first seen between fork and exec
                      # (still showing its parent's command line) is judged again


@dataclass
class ScanResult:
    processes: list[ProcessInfo]
    cgroups: list[CgroupInfo]


class Discovery:
    def __init__(self, cfg: Config, proc_root: str = "/proc", cgroup_root: Path | None = None,
                 self_pid: int | None = None,
                 warn: Callable[[str, str, str], None] | None = None):
        self.rules = cfg.processes
        self.parents = cfg.cgroups.parents
        self.proc = proc_root
        self.cgroup_root = cgroup_root
        self.self_pid = os.getpid() if self_pid is None else self_pid
        self.warn = warn or (lambda key, kind, msg: None)
        self._seen: dict[int, _Seen] = {}
        self._explicit = set(self.rules.pids)
        # An explicit PID names the process that had it when first seen; once that one
        # exits, a new process given the same PID is judged by the other rules only.
        self._explicit_start: dict[int, int] = {}
        self._own_cgroup: str | None = None
        self._waiting: dict[int, int] = {}     # VM pid -> scans left to wait for vCPUs
        self.labels = Labeler(cfg, proc_root)     # groups and constraints (host reads)

    # --- runtime control (homenode include/exclude, SIGHUP) ----------------------------

    def include(self, pid: int) -> None:
        """Manage ``pid`` from the next scan on, as if it were in ``processes.pids``."""
        self._explicit.add(pid)
        self._explicit_start.pop(pid, None)
        self._seen.pop(pid, None)          # judged again at the next scan

    def exclude(self, pid: int) -> None:
        self._explicit.discard(pid)
        self._explicit_start.pop(pid, None)

    def set_rules(self, cfg: Config, extra_pids: Iterable[int] = ()) -> None:
        """A reloaded config's client rules: every process is judged again."""
        self.rules = cfg.processes
        self.parents = cfg.cgroups.parents
        self._explicit = set(self.rules.pids) | set(extra_pids)
        self._explicit_start = {}
        self._seen = {}
        self.labels = Labeler(cfg, self.proc)

    # --- processes ------------------------------------------------------------------

    def scan(self, now: float, tracked: Iterable[tuple[int, int]],
             tracked_cgroups: Iterable[str], slot: tuple[int, int] = (1, 0)) -> ScanResult:
        """New clients.  PIDs that appeared since the last scan are always read; the
        others only when ``pid % slot[0] == slot[1]`` (thresholds, PID reuse), so that
        successive scans with k = 0..n-1 cover every process once, at an even cost."""
        n, k = slot
        known = {key[:2] for key in tracked}       # a VM's slices share (pid, start)
        found: list[ProcessInfo] = []
        seen: dict[int, _Seen] = {}
        for pid in sorted(procfs.list_pids(self.proc)):
            if pid == 1 or pid == self.self_pid:
                continue
            entry = self._seen.get(pid)
            if entry is not None and pid % n != k and pid not in self._waiting:
                seen[pid] = entry          # judged again in its own slot
                continue
            try:
                st = procfs.read_stat(self.proc, pid)
            except (SysError, ParseError):
                continue
            if entry is None or entry.start != st.starttime or entry.comm != st.comm:
                entry = self._judge(pid, st)
            ticks = st.utime + st.stime
            cpu = ((ticks - entry.cpu_ticks) / CLK_TCK / (now - entry.at)
                   if now > entry.at else 0.0)
            entry.cpu_ticks, entry.at = ticks, now
            seen[pid] = entry
            if entry.verdict == _NEVER or (pid, st.starttime) in known:
                continue
            if entry.verdict == _THRESHOLD and not (
                    st.rss_bytes >= self.rules.min_rss and cpu >= self.rules.min_cpu):
                continue
            if self.parents and self._in_managed_cgroup(pid):
                entry.verdict = _NEVER
                continue
            found.extend(self._describe(pid, st, entry))
        self._seen = seen
        self._waiting = {p: w for p, w in self._waiting.items() if p in seen}
        return ScanResult(found, self.scan_cgroups(set(tracked_cgroups)))

    def _judge(self, pid: int, st: procfs.Stat) -> _Seen:
        """The static part of the verdict: explicit, matching, a VM, or size-dependent."""
        r = self.rules
        if st.kernel_thread:
            return _Seen(st.starttime, _NEVER, "", False, 0, -1.0, st.comm)
        unreadable = False
        try:
            argv = procfs.read_cmdline(self.proc, pid)
        except SysError as e:
            unreadable = True
            if not (e.gone or isinstance(e, AccessDenied)):
                # EIO, ENOMEM, EMFILE...: passing trouble; judged again next scan, not
                # left unmanaged for the life of the process.
                return _Seen(-1, _NEVER, "", False, st.utime + st.stime, -1.0, st.comm)
            argv = []
        line = " ".join(argv)
        vm = r.vms and is_qemu(argv, st.comm)
        if pid in self._explicit and \
                self._explicit_start.setdefault(pid, st.starttime) == st.starttime:
            verdict, why = _ALWAYS, "pid"
        elif not line and not unreadable and st.state != "Z":
            # inside an exec: the kernel sets the new comm before the new command line
            # (begin_new_exec, then create_elf_tables); judged again next scan
            return _Seen(-1, _NEVER, "", False, st.utime + st.stime, -1.0, st.comm)
        elif not argv or any(p.search(line) for p in r.exclude):
            verdict, why = _NEVER, ""      # no command line: a zombie, or none we may read
        elif any(p.search(line) for p in r.cmdline):
            verdict, why = _ALWAYS, "cmdline"
        elif vm:
            verdict, why = _ALWAYS, "vm"
        elif r.auto:
            verdict, why = _THRESHOLD, "auto"
        else:
            verdict, why = _NEVER, ""
        return _Seen(st.starttime, verdict, why, vm, st.utime + st.stime, -1.0, st.comm)

    def _describe(self, pid: int, st: procfs.Stat, entry: _Seen) -> list[ProcessInfo]:
        """The client(s) a process becomes: one, or one per guest node of a VM with a
        guest NUMA topology; none yet while such a VM is still creating its vCPUs."""
        try:
            argv = procfs.read_cmdline(self.proc, pid)
        except SysError:
            return []
        vcpus = vcpu_threads(self.proc, pid)
        if not (entry.vm or vcpus > 0):
            return [ProcessInfo(pid, st.starttime, st.comm, entry.why, False, 0, st.rss_bytes,
                                tuple(argv))]
        name = qemu_name(argv) or st.comm
        whole = ProcessInfo(pid, st.starttime, name, entry.why or "vm", True,
                            vcpus or qemu_smp(argv), qemu_mem(argv) or st.rss_bytes,
                            tuple(argv))
        layout = qemu.parse_guest_numa(argv)
        if layout is None:
            return [whole]
        wanted = {v for node in layout.nodes for v in node.vcpus
                  if v < qemu.parse_smp(argv).cpus}
        if vcpus < len(wanted) and qemu_debug_threads(argv):
            left = self._waiting.setdefault(pid, VM_WAIT_SCANS)
            if left > 0:
                self._waiting[pid] = left - 1
                return []                  # QEMU is still starting: look again next tick
        self._waiting.pop(pid, None)
        if vcpus < len(wanted):
            self.warn(f"pid:{pid}", "vnuma",
                      f"VM {name} (pid {pid}) has {len(layout.nodes)} guest NUMA nodes but "
                      f"{vcpus} of its {len(wanted)} vCPU threads are named CPU n/KVM "
                      f"(QEMU needs -name ...,debug-threads=on): managed as one client")
            return [whole]
        guest = GuestVm(pid, layout)
        why = entry.why or "vm"
        return [ProcessInfo(pid, st.starttime, name,
                            f"{why}, guest node {node.id} of {len(layout.nodes)}", True,
                            len(node.vcpus & wanted), layout.mem_bytes(node), tuple(argv),
                            guest, node)
                for node in layout.nodes]

    def _in_managed_cgroup(self, pid: int) -> bool:
        try:
            path = procfs.read_cgroup_v2_path(self.proc, pid)
        except SysError:
            return False
        rel = (path or "").strip("/")
        return any(rel == p or rel.startswith(p + "/") for p in self.parents)

    # --- cgroups --------------------------------------------------------------------

    def _holds_self(self, rel: str) -> bool:
        """homenode never manages the cgroup it runs in (homenode.service under
        system.slice, say)."""
        if self._own_cgroup is None:
            try:
                own = procfs.read_cgroup_v2_path(self.proc, self.self_pid) or ""
            except SysError:
                own = ""
            self._own_cgroup = own.strip("/")
        return self._own_cgroup == rel or self._own_cgroup.startswith(rel + "/")

    def scan_cgroups(self, tracked: set[str]) -> list[CgroupInfo]:
        if not self.parents or self.cgroup_root is None:
            return []
        out = []
        for parent in self.parents:
            try:
                kids = cgroup.children(self.cgroup_root / parent)
            except SysError as e:
                self.warn(f"cg:{parent}", "parent", f"cgroup parent {parent}: {e}")
                continue
            for path in kids:
                rel = path.relative_to(self.cgroup_root).as_posix()
                if rel in tracked or self._holds_self(rel):
                    continue
                out.append(CgroupInfo(path, rel, cgroup.display_name(path)))
        return out


# --- QEMU -----------------------------------------------------------------------------------

def is_qemu(argv: list[str], comm: str) -> bool:
    exe = os.path.basename(argv[0]) if argv else ""
    return bool(QEMU_EXE.match(exe) or QEMU_EXE.match(comm) or comm.startswith("qemu-"))


def vcpu_threads(proc: str, pid: int) -> int:
    """Threads named ``CPU n/KVM`` (QEMU's vCPU threads; ``CPU n/TCG`` without KVM)."""
    n = 0
    try:
        tids = procfs.list_tids(proc, pid)
    except SysError:
        return 0
    for tid in tids:
        try:
            if VCPU_THREAD.match(procfs.read_comm(proc, pid, tid)):
                n += 1
        except SysError:
            continue
    return n


def _option(argv: list[str], name: str) -> str | None:
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(name + "="):
            return a[len(name) + 1:]
    return None


def _suboptions(value: str) -> tuple[str, dict[str, str]]:
    """QEMU ``first,key=val,...`` (",," is a literal comma): (first bare value, keys)."""
    parts = [p.replace("\0", ",") for p in value.replace(",,", "\0").split(",")]
    bare = ""
    keys = {}
    for p in parts:
        k, sep, v = p.partition("=")
        if sep:
            keys[k] = v
        elif not bare:
            bare = p
    return bare, keys


def qemu_name(argv: list[str]) -> str:
    value = _option(argv, "-name")
    if not value:
        return ""
    bare, keys = _suboptions(value)
    return keys.get("guest") or bare


def qemu_debug_threads(argv: list[str]) -> bool:
    """``-name ...,debug-threads=on``: QEMU names its threads (``CPU n/KVM``)."""
    value = _option(argv, "-name")
    return bool(value) and _suboptions(value)[1].get("debug-threads") == "on"


def qemu_smp(argv: list[str]) -> int:
    value = _option(argv, "-smp")
    if not value:
        return 1
    bare, keys = _suboptions(value)
    try:
        return max(1, int(keys.get("cpus") or bare or 1))
    except ValueError:
        return 1


def qemu_mem(argv: list[str]) -> int:
    """Guest RAM from ``-m`` (a plain number is MiB, as QEMU reads it)."""
    value = _option(argv, "-m")
    if not value:
        return 0
    bare, keys = _suboptions(value)
    size = keys.get("size") or bare
    m = re.match(r"^(\d+(?:\.\d+)?)([kKmMgGtT]?)[bB]?$", size or "")
    if not m:
        return 0
    mult = {"": MIB, "k": 1 << 10, "m": MIB, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()]
    return int(float(m.group(1)) * mult)
