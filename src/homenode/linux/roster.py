"""The clients the host tracks, by key, and the keys it never picks up again.

Process clients are keyed by (PID, start time[, guest node]), cgroup clients by their
path below the cgroup root.  Dropping a client forgets its error bookkeeping, so a new
process given the same PID starts clean, and marks the state file for a write when
homenode had set something on it.
"""

from __future__ import annotations

from typing import Protocol

from homenode.linux.actions_io import Books, HostStats
from homenode.linux.clients import CgroupClient, ProcessClient, Tracked
from homenode.linux.kernel import procfs

# Keys of unreadable clients are remembered so they are not picked up again; past this
# many, the ones whose process has exited are forgotten (churn must not grow memory).
IGNORED_PRUNE_AT = 1024


class Forgets(Protocol):
    def forget(self, key: object, cid: str) -> None:
        """A client is gone: its error bookkeeping goes too (homenode.linux.guard)."""


class Roster:
    def __init__(self, stats: HostStats, guard: Forgets, keeper: Books):
        self.stats, self.guard, self.keeper = stats, guard, keeper
        self.procs: dict[tuple[int, ...], ProcessClient] = {}
        self.cgroups: dict[str, CgroupClient] = {}
        self.ignored: set[object] = set()               # keys never to be picked up again
        self.unsettled: set[tuple[int, ...]] = set()    # masks to repair (failed put-back)

    def all(self) -> list[Tracked]:
        return [*self.procs.values(), *self.cgroups.values()]

    def __contains__(self, key: object) -> bool:
        return key in self.procs or key in self.cgroups

    def known_processes(self) -> list[tuple[int, ...]]:
        """Process keys tracked or ignored: discovery does not report them again."""
        return list(self.procs) + [k for k in self.ignored if isinstance(k, tuple)]

    def drop(self, key: object) -> None:
        self.stats.dropped += 1
        c = self.procs.pop(key, None) or self.cgroups.pop(key, None)  # type: ignore[arg-type]
        self.unsettled.discard(key)  # type: ignore[arg-type]
        if c is not None:
            self.guard.forget(key, c.id)
            self.keeper.dirty = self.keeper.dirty or c.set_cpus is not None

    def ignore(self, key: object, proc: str) -> None:
        """Drop ``key`` and never pick it up again (while its process lives)."""
        self.drop(key)
        self.ignored.add(key)
        if len(self.ignored) > IGNORED_PRUNE_AT:
            self.prune_ignored(proc)

    def prune_ignored(self, proc: str) -> None:
        alive = set(procfs.list_pids(proc))
        self.ignored = {k for k in self.ignored
                        if not isinstance(k, tuple) or k[0] in alive}

    def include(self, pid: int) -> None:
        """Forget that the processes of ``pid`` were released or unreadable."""
        self.ignored = {k for k in self.ignored if not (isinstance(k, tuple) and k[0] == pid)}
