"""Processes from /proc: stat, status, cmdline, tasks, schedstat, maps and numa_maps.

One small parser per file, each taking text, and one reader per file taking the proc
root, so tests run on fixture trees.  Reading errors are translated at the one boundary
(homenode.linux.kernel.files): a vanished process is ``ProcessGone``, a forbidden one
``AccessDenied``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from homenode.linux.kernel.errors import ParseError
from homenode.linux.kernel.files import list_names, read_bytes
from homenode.linux.kernel.sysfs import parse_cpulist

PF_KTHREAD = 0x00200000      # include/linux/sched.h: "I am a kernel thread"
KTHREADD_PID = 2
# /proc/PID/stat fields after the ")" that ends comm, counted from 0 = field 3 (state).
_STATE, _PPID, _FLAGS, _UTIME, _STIME = 0, 1, 6, 11, 12
_NICE, _THREADS, _START, _VSIZE, _RSS, _PROCESSOR = 16, 17, 19, 20, 21, 36
# numa_maps policy names (mm/mempolicy.c policy_modes[]); two contain spaces.
POLICY_NAMES = ("weighted interleave", "prefer (many)", "interleave", "default", "prefer",
                "bind", "local")
_SPACED_POLICIES = ("weighted interleave", "prefer (many)")
BINDING_POLICIES = ("bind", "interleave", "weighted interleave", "prefer", "prefer (many)")
# Mappings whose pages are shared memory: they count as the client's memory.
SHM_PREFIXES = ("/memfd:", "/dev/shm/", "/SYSV", "/dev/zero", "/dev/hugepages", "/hugepages")
SYSTEM_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
SYSTEM_PAGE_KB = SYSTEM_PAGE_SIZE // 1024
_OCTAL = re.compile(r"\\([0-7]{3})")


# --- /proc/PID/stat -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Stat:
    pid: int
    comm: str
    state: str
    ppid: int
    flags: int
    utime: int          # clock ticks
    stime: int
    nice: int
    num_threads: int
    starttime: int      # clock ticks after boot: with the PID, the process's identity
    vsize: int          # bytes
    rss: int            # pages of SYSTEM_PAGE_SIZE
    processor: int      # CPU last run on

    @property
    def rss_bytes(self) -> int:
        return self.rss * SYSTEM_PAGE_SIZE

    @property
    def kernel_thread(self) -> bool:
        return bool(self.flags & PF_KTHREAD) or KTHREADD_PID in (self.pid, self.ppid)


def parse_stat(data: bytes | str) -> Stat:
    """``/proc/PID/stat``.  ``comm`` is between the first "(" and the *last* ")": it may
    itself contain spaces and parentheses (numad splits at the first space and misreads
    every later field of such a process)."""
    if isinstance(data, str):
        data = data.encode()
    head, sep, tail = data.rpartition(b")")
    pid_s, lp, comm = head.partition(b"(")
    f = tail.split()
    if not sep or not lp or len(f) < _PROCESSOR + 1:
        raise ParseError(f"bad stat line {data[:80]!r}")
    try:
        return Stat(int(pid_s), comm.decode("utf-8", "replace"), f[_STATE].decode(),
                    int(f[_PPID]), int(f[_FLAGS]), int(f[_UTIME]), int(f[_STIME]),
                    int(f[_NICE]), int(f[_THREADS]), int(f[_START]), int(f[_VSIZE]),
                    int(f[_RSS]), int(f[_PROCESSOR]))
    except ValueError:
        raise ParseError(f"bad stat line {data[:80]!r}") from None


def read_stat(proc: str, pid: int, tid: int | None = None) -> Stat:
    path = f"{proc}/{pid}/stat" if tid is None else f"{proc}/{pid}/task/{tid}/stat"
    return parse_stat(read_bytes(path, f"read {path}", single=True))


# --- listings -----------------------------------------------------------------------------

def list_pids(proc: str) -> list[int]:
    return [int(n) for n in list_names(proc) if n.isdigit()]


def list_tids(proc: str, pid: int) -> list[int]:
    return [int(n) for n in list_names(f"{proc}/{pid}/task") if n.isdigit()]


# --- small files ---------------------------------------------------------------------------

def read_cmdline(proc: str, pid: int) -> list[str]:
    data = read_bytes(f"{proc}/{pid}/cmdline", f"read {proc}/{pid}/cmdline")
    return [a.decode("utf-8", "replace") for a in data.split(b"\0") if a]


def read_comm(proc: str, pid: int, tid: int) -> str:
    path = f"{proc}/{pid}/task/{tid}/comm"
    return read_bytes(path, f"read {path}").decode("utf-8", "replace").rstrip("\n")


def parse_schedstat(data: bytes | str) -> tuple[int, int]:
    """``/proc/PID/task/TID/schedstat``: (ns on CPU, ns waiting on a run queue)."""
    f = data.split()
    try:
        return int(f[0]), int(f[1])
    except (IndexError, ValueError):
        raise ParseError(f"bad schedstat {data[:80]!r}") from None


def read_schedstat(proc: str, pid: int, tid: int) -> tuple[int, int]:
    path = f"{proc}/{pid}/task/{tid}/schedstat"
    return parse_schedstat(read_bytes(path, f"read {path}", single=True))


def parse_status(data: bytes | str) -> dict[str, str]:
    """``Key:\\tvalue`` lines of /proc/PID/status."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    out = {}
    for line in data.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key] = value.strip()
    return out


def status_field(data: bytes, key: str) -> str:
    """One field of /proc/PID/status without parsing the rest (read every tick)."""
    k = b"\n" + key.encode() + b":"
    i = data.find(k)
    if i < 0:
        return ""
    j = data.find(b"\n", i + len(k))
    return data[i + len(k): j if j >= 0 else len(data)].decode("utf-8", "replace").strip()


def read_status_bytes(proc: str, pid: int, tid: int | None = None) -> bytes:
    path = f"{proc}/{pid}/status" if tid is None else f"{proc}/{pid}/task/{tid}/status"
    return read_bytes(path, f"read {path}", single=True)


def read_status(proc: str, pid: int, tid: int | None = None) -> dict[str, str]:
    path = f"{proc}/{pid}/status" if tid is None else f"{proc}/{pid}/task/{tid}/status"
    return parse_status(read_bytes(path, f"read {path}", single=True))


def allowed_cpus(status: dict[str, str]) -> frozenset[int]:
    return frozenset(parse_cpulist(status.get("Cpus_allowed_list", "")))


def allowed_mems(status: dict[str, str]) -> frozenset[int]:
    return frozenset(parse_cpulist(status.get("Mems_allowed_list", "")))


def read_cgroup_v2_path(proc: str, pid: int) -> str | None:
    """The process's cgroup v2 path (``0::/machine.slice/...``), or None."""
    data = read_bytes(f"{proc}/{pid}/cgroup", f"read {proc}/{pid}/cgroup")
    for line in data.decode("utf-8", "replace").splitlines():
        if line.startswith("0::"):
            return line[3:]
    return None


# --- maps and numa_maps ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Mapping:
    """One line of /proc/PID/maps."""

    start: int
    end: int
    perms: str
    path: str

    @property
    def writable(self) -> bool:
        return "w" in self.perms


def parse_maps(data: bytes | str) -> list[Mapping]:
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    out = []
    for line in data.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        lo, _, hi = parts[0].partition("-")
        try:
            out.append(Mapping(int(lo, 16), int(hi, 16), parts[1],
                               parts[5] if len(parts) > 5 else ""))
        except ValueError:
            raise ParseError(f"bad maps line {line[:80]!r}") from None
    return out


def read_maps(proc: str, pid: int) -> list[Mapping]:
    return parse_maps(read_bytes(f"{proc}/{pid}/maps", f"read {proc}/{pid}/maps"))


@dataclass(slots=True)
class Vma:
    """One line of /proc/PID/numa_maps: the VMA's start, its effective memory policy,
    its page size and its resident pages per node (in units of ``page_kb``)."""

    start: int
    policy: str = "default"
    page_kb: int = SYSTEM_PAGE_KB
    nodes: dict[int, int] = field(default_factory=dict)
    anon: int = 0
    huge: bool = False
    file: str = ""
    _own: dict[int, int] | None = field(default=None, repr=False, compare=False)

    @property
    def shared_memory(self) -> bool:
        return self.file.startswith(SHM_PREFIXES)

    @property
    def counted(self) -> bool:
        """Pages that are the process's own memory: private (anon), huge, shared memory.
        Shared libraries and read-only file pages are left out: they are not the
        client's working set and mostly cannot be moved."""
        return self.anon > 0 or self.huge or self.shared_memory

    @property
    def binding(self) -> bool:
        return self.policy.split(":")[0].split("=")[0] in BINDING_POLICIES

    def pages_4k(self) -> dict[int, int]:
        mult = self.page_kb // 4 or 1
        return {n: c * mult for n, c in self.nodes.items()}

    def own_pages_4k(self) -> dict[int, int]:
        """The counted pages per node.  In a private *file* mapping (a library's data
        segment) the N counts include the file's clean pages, shared with every process
        mapping it; only the ``anon`` (copied-on-write) share is the process's own, and
        numa_maps does not split it by node, so it is taken in proportion."""
        if self._own is None:
            self._own = self._own_pages()
        return self._own

    def _own_pages(self) -> dict[int, int]:
        if not self.counted:
            return {}
        pages = self.pages_4k()
        if not self.file or self.huge or self.shared_memory:
            return pages
        total = sum(self.nodes.values())
        share = min(1.0, self.anon / total) if total else 0.0
        return {n: round(c * share) for n, c in pages.items()}


def _split_policy(rest: str) -> tuple[str, str]:
    if not rest.startswith(_SPACED_POLICIES):        # the common case: one token
        policy, _, tail = rest.partition(" ")
        return policy, tail
    for name in POLICY_NAMES:
        if rest.startswith(name) and (len(rest) == len(name) or rest[len(name)] in " =:"):
            end = rest.find(" ", len(name))
            return (rest, "") if end < 0 else (rest[:end], rest[end + 1:])
    policy, _, tail = rest.partition(" ")
    return policy, tail


_SHM_TOKENS = tuple(f"file={p}" for p in SHM_PREFIXES)


def _maybe_own(line: str) -> bool:
    """Cheap test: could this line hold the process's own pages?  (Most lines of a
    process are shared libraries, parsed for nothing otherwise.)"""
    return "anon=" in line or " huge" in line or any(t in line for t in _SHM_TOKENS)


def parse_numa_maps(data: bytes | str, own_only: bool = False) -> list[Vma]:
    """numa(7): ``<addr> <policy> [file=<path>|heap|stack|huge] [anon=N dirty=N ...]
    N<node>=<pages> ... kernelpagesize_kB=<kB>``.  Paths are printed with spaces, tabs,
    newlines and "=" escaped as octal, so tokens never contain spaces."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    out = []
    for line in data.splitlines():
        if not line.strip() or (own_only and not _maybe_own(line)):
            continue
        addr, _, rest = line.partition(" ")
        try:
            vma = Vma(int(addr, 16))
        except ValueError:
            raise ParseError(f"bad numa_maps line {line[:80]!r}") from None
        vma.policy, rest = _split_policy(rest)
        for tok in rest.split():
            key, sep, value = tok.partition("=")
            try:
                if not sep:
                    vma.huge = vma.huge or key == "huge"
                elif key[0] == "N" and key[1:].isdigit():
                    vma.nodes[int(key[1:])] = _count(value)
                elif key == "kernelpagesize_kB":
                    vma.page_kb = _count(value) or SYSTEM_PAGE_KB
                elif key == "anon":
                    vma.anon = _count(value)
                elif key == "file":
                    vma.file = value
            except (ValueError, IndexError):
                raise ParseError(f"bad numa_maps token {tok[:40]!r}") from None
        out.append(vma)
    return out


def _count(value: str) -> int:
    """A page count as numa_maps prints it: decimal digits (int() would also take
    "-1", "+1", " 1" or "1_0")."""
    if not value.isascii() or not value.isdigit():
        raise ValueError(value)
    return int(value)


def read_numa_maps(proc: str, pid: int, own_only: bool = False) -> list[Vma]:
    """``own_only``: keep only the VMAs that can hold the process's own pages."""
    return parse_numa_maps(read_bytes(f"{proc}/{pid}/numa_maps",
                                      f"read {proc}/{pid}/numa_maps"), own_only)


def node_pages(vmas: list[Vma]) -> dict[int, int]:
    """Counted 4 KiB pages per node id."""
    out: dict[int, int] = {}
    for v in vmas:
        for n, c in v.own_pages_4k().items():
            out[n] = out.get(n, 0) + c
    return out


def bound_fraction(vmas: list[Vma]) -> float:
    """Fraction of the counted pages under a bind/interleave/prefer policy."""
    total = bound = 0
    for v in vmas:
        c = sum(v.own_pages_4k().values())
        total += c
        bound += c if v.binding else 0
    return bound / total if total else 0.0


def unescape_path(path: str) -> str:
    r"""numa_maps/maps octal escapes (``\040`` = space) back to characters."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), path)


# --- /proc/stat (homenode place samples CPU load) ---------------------------------------------

def parse_proc_stat(text: str) -> dict[int, tuple[int, int]]:
    """``cpuN`` lines of /proc/stat -> {cpu: (busy ticks, total ticks)}."""
    out = {}
    for line in text.splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            f = line.split()
            # user nice system idle iowait irq softirq steal: eight counters since 2.6.11
            if len(f) < 9 or not f[0][3:].isdigit() or not all(
                    x.isascii() and x.isdigit() for x in f[1:9]):
                raise ParseError(f"/proc/stat: bad cpu line {line[:80]!r}")
            v = [int(x) for x in f[1:9]]
            total = sum(v)
            idle = v[3] + v[4]                 # idle + iowait
            out[int(f[0][3:])] = (total - idle, total)
    return out


def read_proc_stat(proc: str = "/proc") -> dict[int, tuple[int, int]]:
    return parse_proc_stat(read_bytes(f"{proc}/stat", "read /proc/stat").decode())


def read_numa_balancing(proc: str = "/proc") -> bool:
    """Whether the kernel's automatic NUMA balancing is on (it moves pages too)."""
    return read_bytes(f"{proc}/sys/kernel/numa_balancing",
                      "numa_balancing").strip() not in (b"0", b"")
