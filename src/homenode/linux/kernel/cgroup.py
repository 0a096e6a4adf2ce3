"""cgroup v2: CPU use (cpu.stat, cpu.pressure), memory per node (memory.numa_stat),
shares and limits (cpu.weight, cpu.max) and the cpuset (cpuset.cpus[.effective]).

Readers take a cgroup directory; parsers take text, so tests run on fixture trees.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from homenode.linux.kernel.errors import ParseError
from homenode.linux.kernel.files import list_dirs, read_bytes, read_text, write_text
from homenode.linux.kernel.sysfs import parse_cpulist
from homenode.units import PAGE_SIZE

# memory.numa_stat keys that are the group's own memory: anonymous pages and shared
# memory (tmpfs, memfd: a QEMU guest's RAM when it is memfd-backed).  Page cache of
# disk images is left out: it is not the client's working set.
NUMA_STAT_KEYS = ("anon", "shmem")
DEFAULT_CPU_WEIGHT = 100       # cgroup v2 default; ESXi "normal" is 1000 shares per vCPU
_NODE_TOKEN = re.compile(r"^N(\d+)=(\d+)$")
_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


def read_file(cg: Path, name: str) -> str:
    return read_text(cg / name)


def write_file(cg: Path, name: str, text: str) -> None:
    write_text(cg / name, text)


# --- finding the hierarchy -------------------------------------------------------------

def find_root(proc: str = "/proc") -> Path | None:
    """The cgroup v2 mount point, from /proc/self/mountinfo (``/sys/fs/cgroup`` on a
    unified host, ``/sys/fs/cgroup/unified`` on a hybrid one)."""
    try:
        data = read_bytes(f"{proc}/self/mountinfo", "read mountinfo").decode("utf-8", "replace")
    except OSError:
        return None
    for line in data.splitlines():
        pre, sep, post = line.partition(" - ")
        if sep and post.split(" ", 1)[0] == "cgroup2":
            fields = pre.split()
            if len(fields) >= 5:
                return Path(fields[4].replace("\\040", " "))
    return None


def children(parent: Path) -> list[Path]:
    return list_dirs(parent)


def descendants(cg: Path) -> list[Path]:
    """``cg`` and every cgroup below it, parents first."""
    out = [cg]
    for child in children(cg):
        out.extend(descendants(child))
    return out


def member_pids(cg: Path) -> list[int]:
    """Processes of ``cg`` and its descendants (libvirt puts a VM's threads in
    ``libvirt/emulator`` and ``libvirt/vcpuN`` below the scope)."""
    pids: list[int] = []
    for g in descendants(cg):
        try:
            text = read_file(g, "cgroup.procs")
        except OSError:
            continue
        try:
            pids.extend(int(x) for x in text.split())
        except ValueError:
            raise ParseError(f"bad cgroup.procs in {g}: {text[:40]!r}") from None
    return pids


def display_name(cg: Path) -> str:
    r"""A readable name: libvirt's ``machine-qemu\x2d3\x2dvm1.scope`` -> ``vm1``."""
    name = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), cg.name)
    for suffix in (".scope", ".service", ".slice"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    m = re.match(r"^machine-qemu-\d+-(.+)$", name)
    return m.group(1) if m else name


# --- parsers ------------------------------------------------------------------------------

def parse_flat_keyed(text: str) -> dict[str, int]:
    """``key value`` lines (cpu.stat, memory.stat)."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise ParseError(f"bad line {line[:80]!r}")
        try:
            out[parts[0]] = int(parts[1])
        except ValueError:
            raise ParseError(f"bad value in {line[:80]!r}") from None
    return out


def parse_numa_stat(text: str) -> dict[str, dict[int, int]]:
    """memory.numa_stat (v2): ``anon N0=<bytes> N1=<bytes>`` per key; keys may be added
    in new kernels anywhere, so they are looked up by name."""
    out: dict[str, dict[int, int]] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        per_node: dict[int, int] = {}
        for tok in parts[1:]:
            m = _NODE_TOKEN.match(tok)
            if m is None:
                raise ParseError(f"bad numa_stat token {tok[:40]!r}")
            per_node[int(m.group(1))] = int(m.group(2))
        out[parts[0]] = per_node
    return out


def numa_pages(stat: dict[str, dict[int, int]], keys: tuple[str, ...] = NUMA_STAT_KEYS
               ) -> dict[int, int]:
    """4 KiB pages per node id over ``keys``."""
    out: dict[int, int] = {}
    for k in keys:
        for n, b in stat.get(k, {}).items():
            out[n] = out.get(n, 0) + b // PAGE_SIZE
    return out


def parse_cpu_max(text: str) -> float:
    """cpu.max ``"$MAX $PERIOD"`` -> a limit in cores (inf for ``max``)."""
    parts = text.split()
    if not parts or len(parts) > 2:
        raise ParseError(f"bad cpu.max {text[:40]!r}")
    if parts[0] == "max":
        return math.inf
    try:
        quota = int(parts[0])
        period = int(parts[1]) if len(parts) == 2 else 100000
    except ValueError:
        raise ParseError(f"bad cpu.max {text[:40]!r}") from None
    if quota <= 0 or period <= 0:
        raise ParseError(f"bad cpu.max {text[:40]!r}")
    return quota / period


def parse_pressure_total(text: str) -> int:
    """``some avg10=... total=<us>`` from cpu.pressure: microseconds in which at least one
    task of the group waited for a CPU."""
    for line in text.splitlines():
        if line.startswith("some "):
            for tok in line.split()[1:]:
                key, _, value = tok.partition("=")
                if key == "total":
                    try:
                        return int(value)
                    except ValueError:
                        break
    raise ParseError(f"bad pressure file {text[:60]!r}")


# --- readers ------------------------------------------------------------------------------

def usage_us(cg: Path) -> int:
    return parse_flat_keyed(read_file(cg, "cpu.stat")).get("usage_usec", 0)


def waiting_us(cg: Path) -> int | None:
    try:
        return parse_pressure_total(read_file(cg, "cpu.pressure"))
    except (OSError, ParseError):
        return None


def node_pages(cg: Path) -> dict[int, int]:
    return numa_pages(parse_numa_stat(read_file(cg, "memory.numa_stat")))


def cpu_weight(cg: Path) -> int:
    try:
        return int(read_file(cg, "cpu.weight").strip())
    except (OSError, ValueError):
        return DEFAULT_CPU_WEIGHT


def cpu_limit(cg: Path) -> float:
    try:
        return parse_cpu_max(read_file(cg, "cpu.max"))
    except (OSError, ParseError):
        return math.inf


def memory_max(cg: Path) -> int | None:
    try:
        text = read_file(cg, "memory.max").strip()
    except OSError:
        return None
    try:
        return None if text in ("", "max") else int(text)
    except ValueError:
        return None


def has_cpuset(cg: Path) -> bool:
    return (cg / "cpuset.cpus").exists()


def read_cpuset(cg: Path, name: str) -> frozenset[int] | None:
    """A cpuset file as a set; None when it is empty (inherit) or absent."""
    try:
        text = read_file(cg, name).strip()
    except OSError:
        return None
    return frozenset(parse_cpulist(text)) if text else None
