"""A killed daemon's work, adopted at restart; and the state file kept in step (``Keeper``).

Each client kind (homenode.linux.kinds) turns its client into a state record
(homenode.linux.state) -- what homenode set on it and what to put back -- and adopts a
client found at start-up from the record a previous daemon left for it.  A record is
keyed by (PID, start time), so a reused PID never matches.  It is adopted only if every
thread's CPU affinity (or the cgroup's ``cpuset.cpus``) is one homenode set -- or one of
the recorded originals, for threads a killed daemon had not reached yet.  The client then
keeps its home (the node of those CPUs), its home time, and the originals to put back on
exit, and it stays managed.  Anything else means someone re-bound it while no homenode
ran: the record is dropped and the usual first look applies (bound by someone else,
never overridden).

Threads found half-way -- some on the pending CPUs of an interrupted home change, some
still on the old ones -- are completed onto the pending CPUs: the move was decided and
begun, and the memory may already be following it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from homenode.linux.actions_io import KernelIo
from homenode.linux.clients import ProcessClient, Tracked
from homenode.linux.discovery import ProcessInfo
from homenode.linux.kernel import procfs
from homenode.linux.kernel.errors import SysError
from homenode.linux.kinds import kind_of
from homenode.linux.kinds.process import adopt_process
from homenode.linux.kinds.threads import restore as restore_threads
from homenode.linux.state import Cpus, Saved, StateFile
from homenode.model import Topology

log = logging.getLogger("homenode.linux")

Clock = Callable[[float], float]


# --- the host's side of the state file -------------------------------------------------------

class Keeper:
    """Keeps the state file in step with the homes homenode sets, and hands the previous
    daemon's records to the clients they belong to as those are found.

    ``carried``: records not adopted yet (their clients not found yet, e.g. an ``auto``
    client before its second look); kept in the file while their process lives, and put
    back by ``restore_carried`` on a clean exit."""

    def __init__(self, state: StateFile | None, proc: str, sys: ModuleType,
                 now: Callable[[], float], write: bool, cgroup_root: Path | None = None):
        self.state = state
        self.proc = proc
        self.cgroup_root = cgroup_root
        self.sys = sys
        self.io = KernelIo(proc, sys)
        self.now = now
        self.write = write and state is not None      # never in a dry run
        self.carried: Saved = state.load() if state is not None else Saved()
        self.pending: dict[object, Cpus] = {}
        self.dirty = False
        if self.carried:
            log.info("state file %s: %d records of a previous homenode to adopt",
                     state.path if state else "", len(self.carried))

    def to_wall(self, t: float) -> float:
        return time.time() - (self.now() - t)

    def from_wall(self, w: float) -> float:
        return self.now() - max(0.0, time.time() - w)

    # --- adoption ----------------------------------------------------------------------------

    def found(self, c: Tracked, topo: Topology) -> str | None:
        """A client just found: adopted from the previous daemon's record, if any."""
        verdict = kind_of(c).adopt(c, self.carried, self.io, topo, self.from_wall,
                                   self.write)
        if verdict is not None:
            self.dirty = True
        return verdict

    # --- writing -----------------------------------------------------------------------------

    def write_ahead(self, homes: list[tuple[Tracked, Cpus]], tracked: list[Tracked]) -> None:
        """Before a batch of home changes: the file names their CPUs as pending (and the
        originals of first-time clients), so a kill in the middle is still adopted."""
        if not self.write or not homes:
            return
        for c, cpus in homes:
            try:
                kind_of(c).capture_originals(c, self.io)
            except SysError:
                continue        # the action itself will meet the error and report it
            self.pending[c.key] = cpus  # type: ignore[attr-defined]
        self.dirty = True
        self.save(tracked)

    def save(self, tracked: list[Tracked]) -> None:
        if not self.write or not self.dirty or self.state is None:
            return
        out = Saved()
        for c in tracked:
            kind_of(c).record(c, self.pending.get(c.key), self.to_wall, out)
        self._prune_carried()
        for k, r in self.carried.procs.items():
            out.procs.setdefault(k, r)
        for rel, g in self.carried.cgroups.items():
            out.cgroups.setdefault(rel, g)
        self.state.save(out)
        self.dirty = False

    def _prune_carried(self) -> None:
        """Forget records whose process has exited (or whose PID is someone else's)."""
        for key in list(self.carried.procs):
            try:
                alive = procfs.read_stat(self.proc, key[0]).starttime == key[1]
            except SysError:
                alive = False
            if not alive:
                del self.carried.procs[key]
        for rel in list(self.carried.cgroups):
            if self.cgroup_root is None or not (self.cgroup_root / rel).is_dir():
                del self.carried.cgroups[rel]

    def restore_carried(self, topo: Topology | None) -> tuple[int, int]:
        """On a clean exit, put back what a previous daemon set on processes this one
        never found as clients (the config changed, say): homenode's promise holds."""
        clients = threads = 0
        if not self.write or topo is None:
            return 0, 0
        for key, rec in list(self.carried.procs.items()):
            if rec.part is not None:
                continue        # a VM slice is only put back by a daemon that found it
            try:
                st = procfs.read_stat(self.proc, rec.pid)
                if st.starttime != rec.start:
                    continue
                c = ProcessClient(ProcessInfo(rec.pid, rec.start, st.comm, "state"), 0.0)
                if adopt_process(c, rec, self.io, topo, self.from_wall) in (
                        "adopted", "completed"):
                    n = restore_threads(c, self.io)
                    clients += n > 0
                    threads += n
            except SysError as e:
                if not e.gone:
                    log.warning("restore pid %d (from the state file): %s", rec.pid, e)
                continue
            finally:
                del self.carried.procs[key]
        self.dirty = True
        return clients, threads
