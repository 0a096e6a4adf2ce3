"""Moving a process's pages from one node to another within a page budget: the page
mover every client kind (homenode.linux.kinds) and the migration engine use.

Paced path: the writable mappings of the process (/proc/PID/maps) are scanned from
where the previous call stopped.  ``move_pages`` with no target nodes reports each
page's node; the pages found on ``src`` are moved to ``dst`` with ``move_pages``
(MPOL_MF_MOVE: pages shared with other processes stay) until the budget is spent.  The
scan resumes at the next call, wrapping around, so successive ticks walk the whole
address space once instead of re-reading it from the start.

Bulk path (``daemon.migration = "bulk"``): one ``migrate_pages`` call moves every page
of the process on ``src``, whatever the budget.  Never ``cpuset.mems``: that moves all
memory at once, unpaced, with the writer blocked for the whole copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from homenode.linux.kernel import numa_syscalls as default_sys
from homenode.linux.kernel import procfs
from homenode.linux.kernel.errors import SysError

# Addresses per move_pages call: 4096 pages = 32 KiB of address and status arrays.
CHUNK_PAGES = 4096
# Most addresses examined per process per call (4 GiB of 4 KiB pages): bounds one
# tick's work on a huge, sparsely populated address space; the next tick goes on.
MAX_SCAN_PAGES = 1 << 20
Check = Callable[[], None]

# After a whole pass over a process found none of its pages on a node movable (shared,
# pinned, busy), that node is not scanned again for this long -- unless more of the
# client's pages appear there -- so stuck pages cost no scan every tick.
STUCK_BACKOFF_S = 30.0
# Kernel-provided mappings that are never the process's memory.
SPECIAL_MAPPINGS = ("[vvar]", "[vvar_vclock]", "[vdso]", "[vsyscall]", "[uprobes]")


@dataclass
class Moved:
    moved: int = 0          # 4 KiB pages now on dst
    failed: int = 0         # pages on src that the kernel would not move (busy, pinned)
    scanned: int = 0        # addresses examined
    wrapped: bool = False   # the scan went round the whole address space
    cursor: int = 0         # where the next call resumes
    error: SysError | None = None   # the call that stopped the pass (after ``moved``)


def movable_mappings(proc: str, pid: int, starts: set[int] | None = None,
                     ranges: tuple[tuple[int, int], ...] | None = None
                     ) -> list[procfs.Mapping]:
    """The mappings to scan: those starting at ``starts`` (the VMAs whose own pages
    numa_maps showed on the source node), else every writable one.  With ``ranges`` (a
    VM's guest node, homenode.linux.vmslice) only mappings inside them, never more."""
    maps = [m for m in procfs.read_maps(proc, pid)
            if m.path not in SPECIAL_MAPPINGS and m.end > m.start]
    if ranges is not None:
        maps = [m for m in maps if any(lo <= m.start and m.end <= hi for lo, hi in ranges)]
    if starts:
        chosen = [m for m in maps if m.start in starts]
        if chosen:
            return chosen
    return [m for m in maps if m.writable]


def move_paced(proc: str, pid: int, src: int, dst: int, budget: int, cursor: int,
               page_kb: dict[int, int] | None = None,
               sys: ModuleType = default_sys, starts: set[int] | None = None,
               ranges: tuple[tuple[int, int], ...] | None = None,
               alive: Check | None = None) -> Moved:
    """Move up to ``budget`` 4 KiB pages of ``pid`` from node id ``src`` to ``dst``,
    starting at address ``cursor``.  A transparent huge page moves whole, so the last
    batch may exceed the budget by less than one huge page.

    A failing call other than the process's exit ends the pass early with ``error`` set,
    keeping the count of the pages already moved: the caller accounts for them, then
    reports the error.  ``alive`` (homenode.linux.kernel.identity) is called before every
    move_pages: it raises ProcessGone once the process has exited."""
    out = Moved(cursor=cursor)
    maps = movable_mappings(proc, pid, starts, ranges)
    if not maps or budget <= 0:
        return out
    try:
        return _scan_and_move(out, maps, pid, src, dst, budget, cursor, page_kb or {}, sys,
                              alive or _no_check)
    except SysError as e:
        if e.gone:
            raise
        out.error = e
        return out


def _no_check() -> None:
    pass


def _scan_and_move(out: Moved, maps: list[procfs.Mapping], pid: int, src: int, dst: int,
                   budget: int, cursor: int, page_kb: dict[int, int],
                   sys: ModuleType, alive: Check) -> Moved:
    # Start with the mapping holding the cursor (or the next one), then wrap around.
    first = next((i for i, m in enumerate(maps) if m.end > cursor), 0)
    order = maps[first:] + maps[:first]
    for k, m in enumerate(order):
        kb = page_kb.get(m.start, procfs.SYSTEM_PAGE_KB)
        step = kb * 1024
        per_page = max(1, kb // 4)              # 4 KiB pages per page of this mapping
        a = m.start
        if k == 0 and m.start <= cursor < m.end:
            a = m.start + (cursor - m.start) // step * step
        while a < m.end:
            out.cursor = a              # resume here if a call fails in this chunk
            n = min(CHUNK_PAGES, (m.end - a) // step)
            if n <= 0:
                break
            addrs = np.arange(a, a + n * step, step, dtype=np.uint64)
            alive()
            where = sys.move_pages(pid, addrs, None)
            out.scanned += n
            on_src = addrs[where == src]
            if on_src.size:
                take = min(on_src.size, -(-budget // per_page))
                alive()
                status = sys.move_pages(pid, on_src[:take], dst)
                done = int(np.count_nonzero(status == dst))
                out.moved += done * per_page
                out.failed += (take - done) * per_page
                budget -= take * per_page
                if budget <= 0:
                    out.cursor = int(on_src[take]) if take < on_src.size else a + n * step
                    return out
            a += n * step
            if out.scanned >= MAX_SCAN_PAGES:
                out.cursor = a
                return out
    out.wrapped = True
    out.cursor = 0                  # the next call starts again at the lowest mapping
    return out


# The slice loop, for homenode.linux.engine (which counts a slice cut short itself).
scan_and_move = _scan_and_move


def move_bulk(pid: int, src: int, dst: int, sys: ModuleType = default_sys,
              alive: Check | None = None) -> int:
    """All of ``pid``'s pages on ``src`` to ``dst``; returns the pages not moved."""
    if alive is not None:
        alive()
    return sys.migrate_pages(pid, [src], [dst])
