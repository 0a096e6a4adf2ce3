"""Where each guest node's memory lies in a QEMU process (/proc/PID/maps).

QEMU does not name the mapping of most memory backends, so they are recognised by what
QEMU does when it maps them (util/mmap-alloc.c ``qemu_ram_mmap``, backends/hostmem-*.c,
``file_ram_open``; checked on QEMU 7.2 by tests/linux/test_linux_vnuma_real.py):

- a backend is one read-write mapping of exactly its size (rounded up to the page), with
  a one-page PROT_NONE guard after it (so two backends never merge into one VMA);
- ``memory-backend-file`` with ``mem-path`` a directory maps
  ``<dir>/qemu_back_mem.<id>.XXXXXX (deleted)``; with a file, that file: found by name;
- ``memory-backend-memfd`` maps ``/memfd:memory-backend-memfd (deleted)`` for *every*
  backend, and ``memory-backend-ram`` an anonymous mapping (``/dev/zero (deleted)`` with
  ``share=on``): these are told apart by size and order of creation;
- backends are created in command-line order, before any device's RAM (``vga.vram``,
  ROMs); in the default top-down layout each new mapping lies below the previous one
  (the legacy bottom-up layout, detected from where the shared libraries lie, above);
- guest RAM is MADV_DONTFORK (``dc`` in smaps ``VmFlags``), unlike malloc arenas or
  thread stacks: read only when a size has more candidate mappings than backends.

Limits: a backend added later by QMP ``object-add`` (memory hotplug) is not on the
command line and is not counted; a mapping QEMU made before the backends, of the same
size, without ``dc`` is only told apart through smaps.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from homenode.linux.kernel import procfs
from homenode.linux.kernel.errors import SysError
from homenode.linux.kernel.procfs import Mapping, Vma
from homenode.linux.kernel.procmaps import read_vmflags
from homenode.linux.qemu import Backend, GuestLayout, GuestNode

PAGE = 4096
MEMFD_PATH = "/memfd:memory-backend-memfd"       # QEMU's name for every memfd backend
SHARED_ANON_PATH = "/dev/zero (deleted)"         # MAP_SHARED|MAP_ANONYMOUS in maps
DELETED = " (deleted)"
FILE_PREFIX = "qemu_back_mem."                   # file_ram_open's mkstemp name
DONTFORK_FLAG = "dc"                             # smaps VmFlags of MADV_DONTFORK
VCPU_NAME = re.compile(r"^CPU (\d+)/(KVM|TCG)$")   # QEMU's vCPU threads (debug-threads=on)

Range = tuple[int, int]


@dataclass(frozen=True)
class _Run:
    """One mapping, or adjacent pieces of one (a VMA split by mbind, say)."""

    start: int
    end: int
    perms: str
    path: str

    @property
    def size(self) -> int:
        return self.end - self.start


def _class(m: Mapping | _Run) -> str:
    """Which kind of unnamed backend a mapping could be ("" = none)."""
    if "w" not in m.perms:
        return ""
    shared = m.perms.endswith("s")
    if m.path == "" and not shared:
        return "ram"
    if m.path == SHARED_ANON_PATH and shared:
        return "ram-shared"
    if m.path.startswith(MEMFD_PATH):
        return "memfd"
    return ""


def _backend_class(b: Backend) -> str:
    if b.kind == "ram":
        return "ram-shared" if b.share else "ram"
    return b.kind


def _file_match(b: Backend, path: str) -> bool:
    if path.endswith(DELETED):
        path = path[:-len(DELETED)]
    if path == b.mem_path:
        return True
    head, _, name = path.rpartition("/")
    ident = b.id.replace("/", "_")
    return head == b.mem_path and name.startswith(f"{FILE_PREFIX}{ident}.") and \
        len(name) == len(FILE_PREFIX) + len(ident) + 7          # ".XXXXXX"


def _runs(maps: list[Mapping]) -> list[_Run]:
    """Every mapping, plus each longer run of adjacent pieces with the same perms and
    path (a backend whose VMA was split)."""
    out = [_Run(m.start, m.end, m.perms, m.path) for m in maps]
    i = 0
    while i < len(maps):
        j = i
        while j + 1 < len(maps) and maps[j + 1].start == maps[j].end and \
                maps[j + 1].perms == maps[i].perms and maps[j + 1].path == maps[i].path:
            j += 1
        if j > i:
            out.append(_Run(maps[i].start, maps[j].end, maps[i].perms, maps[i].path))
        i = j + 1
    return out


def top_down(maps: list[Mapping], near: int) -> bool:
    """Whether mappings are placed top-down (new ones below older ones): the default,
    where later mappings lie below the shared libraries mapped at start-up."""
    libs = [m.start for m in maps if ".so" in m.path.rpartition("/")[2]]
    return not libs or near < min(libs)


def resolve(layout: GuestLayout, maps: list[Mapping],
            vmflags: Callable[[], dict[int, frozenset[str]]] | None = None
            ) -> dict[str, tuple[Range, ...]]:
    """Backend id -> its address range(s); backends not found are left out.
    ``vmflags`` (smaps VmFlags by mapping start) is called at most once, only when a
    size has more candidate mappings than backends."""
    out: dict[str, tuple[Range, ...]] = {}
    used: set[int] = set()
    ordered = sorted(layout.backends.values(), key=lambda b: b.order)
    for b in ordered:
        if b.kind == "file" and b.mem_path:
            hits = [m for m in maps if "w" in m.perms and _file_match(b, m.path)]
            if hits:
                out[b.id] = tuple((m.start, m.end) for m in hits)
                used.update(m.start for m in hits)
    groups: dict[tuple[str, int], list[Backend]] = {}
    for b in ordered:
        if b.id not in out and b.kind in ("ram", "memfd"):
            size = -(-b.size // PAGE) * PAGE
            groups.setdefault((_backend_class(b), size), []).append(b)
    if not groups:
        return out
    runs = _runs(maps)
    flags: dict[int, frozenset[str]] | None = None
    for (cls, size), backends in groups.items():
        cands = [r for r in runs if r.size == size and r.start not in used and
                 _class(r) == cls]
        if len(cands) > len(backends) and vmflags is not None:
            if flags is None:
                flags = vmflags()
            ram = [r for r in cands if DONTFORK_FLAG in flags.get(r.start, ())]
            cands = ram if len(ram) >= len(backends) else cands
        if not cands:
            continue
        down = top_down(maps, cands[0].start)
        cands.sort(key=lambda r: -r.start if down else r.start)    # order of creation
        for b, r in zip(backends, cands, strict=False):
            out[b.id] = ((r.start, r.end),)
            used.add(r.start)
    return out


def within(start: int, ranges: tuple[Range, ...] | list[Range]) -> bool:
    return any(lo <= start < hi for lo, hi in ranges)


# --- one VM's shared state ------------------------------------------------------------------

class GuestVm:
    """What the slices of one QEMU process share, each read at most once per tick: which
    thread runs which vCPU (``CPU n/KVM``), where each backend's memory lies, and the
    process's numa_maps (a page-table walk: costly for a big VM, so never per slice)."""

    def __init__(self, pid: int, layout: GuestLayout):
        self.pid = pid
        self.layout = layout
        self._vcpu_of: dict[int, int | None] = {}       # tid -> vCPU index (None: other)
        self._looked: set[int] = set()       # threads seen unnamed once
        self._tids_at: float | None = None
        self._maps_at: float | None = None
        self.vmas: list[Vma] = []
        self.ranges: dict[str, tuple[Range, ...]] = {}

    def node_tids(self, proc: str, node: GuestNode, now: float | None = None) -> list[int]:
        """The threads of ``node``'s vCPUs, lowest vCPU first; ``now`` None = list afresh."""
        if now is None or now != self._tids_at:
            self._tids_at = now
            tids = procfs.list_tids(proc, self.pid)
            known = {t: self._vcpu_of[t] for t in tids if t in self._vcpu_of}
            for t in tids:
                if t not in known:
                    v = vcpu_index(proc, self.pid, t)
                    # QEMU names a thread just after creating it: an unnamed thread is
                    # taken as not a vCPU only at its second look.
                    if v is not None or t in self._looked:
                        known[t] = v
                    self._looked.add(t)
            self._vcpu_of = known
            self._looked &= set(tids)
        mine = [(v, t) for t, v in self._vcpu_of.items() if v is not None and v in node.vcpus]
        return [t for _, t in sorted(mine)]

    def numa_maps(self, proc: str, now: float) -> list[Vma]:
        """The process's own VMAs from numa_maps, read once per tick; the backends'
        mappings are located again at each read (VMAs may be split or remapped)."""
        if now != self._maps_at:
            self._maps_at = now
            self.vmas = procfs.read_numa_maps(proc, self.pid)
            maps = procfs.read_maps(proc, self.pid)
            self.ranges = resolve(self.layout, maps, lambda: self._vmflags(proc))
        return self.vmas

    def node_ranges(self, node: GuestNode) -> tuple[Range, ...]:
        return tuple(r for b in node.backends for r in self.ranges.get(b, ()))

    def missing(self, node: GuestNode) -> list[str]:
        """``node``'s backends whose mapping was not found at the last read."""
        return [b for b in node.backends if b not in self.ranges]

    def _vmflags(self, proc: str) -> dict[int, frozenset[str]]:
        return read_vmflags(proc, self.pid)


def vcpu_index(proc: str, pid: int, tid: int) -> int | None:
    """n of a thread named ``CPU n/KVM`` (``CPU n/TCG``), else None."""
    try:
        m = VCPU_NAME.match(procfs.read_comm(proc, pid, tid))
    except SysError:
        return None
    return int(m.group(1)) if m else None
