"""Carrying out one policy action on one client: the host's actuation.

The process is held by a pidfd for the whole action and checked to be alive right before
every call (homenode.linux.identity), so a reused PID is never acted on; a process that
exits during the action is dropped, and one whose PID is reused at once is counted.
Pages moved before a failing call are accounted before the error is reported.  Nothing
here decides: the policy did.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType

from homenode.linux import affinity, migrate
from homenode.linux.adopt import Keeper
from homenode.linux.clients import CgroupClient, Ctx, ProcessClient, Tracked
from homenode.linux.errors import AccessDenied, ProcessGone
from homenode.linux.identity import Pinned
from homenode.linux.state import Cpus
from homenode.model import Action, ActionResult, MigratePages, SetHome, Topology

log = logging.getLogger("homenode.linux")


def Result(action: Action, ok: bool, note: str = "", moved: int = 0,
           target: str = "") -> ActionResult:
    """The one typed result of every host (homenode.model.ActionResult); Linux counts
    the pages it moves, so ``moved`` is never None here."""
    return ActionResult(action, ok, note, moved, target)


@dataclass
class HostStats:
    pages_moved: int = 0
    pages_failed: int = 0
    errors: Counter = field(default_factory=Counter)      # kind of error -> count
    dropped: int = 0        # clients gone (exited or PID reused)
    adopted: int = 0        # clients whose home a previous daemon set, taken over
    reused_during_action: int = 0   # PID found reused right after an action on it


@dataclass
class ActionIo:
    """What carrying out an action may touch -- the kernel (``proc``, ``sys``: the
    syscall module, the fault-injection seam) and the host's books -- so that actions
    take this context instead of the whole host."""

    proc: str
    sys: ModuleType
    dry_run: bool
    bulk: bool                                  # daemon.migration = "bulk"
    stats: HostStats
    keeper: Keeper
    failed: Callable[[Tracked, object, float, str, Exception], None]
    cooling: Callable[[object, float], float]


def target(c: Tracked) -> str:
    """The process acted on, as PID@start time (for the action log and audits)."""
    return f"{c.pid}@{c.start}" if isinstance(c, ProcessClient) else c.id


def apply_one(host: ActionIo, c: Tracked, a: Action, topo: Topology, ctx: Ctx) -> Result:
    if not c.managed:
        return Result(a, False, f"unmanaged: {c.why_unmanaged}")
    if isinstance(c, ProcessClient) and not host.dry_run:
        # Held for the whole action: every call is made only while this very process
        # lives (a reused PID is never acted on).
        with Pinned(host.proc, c.pid, c.start) as pin:
            return _apply(host, c, a, topo, ctx, pin)
    if isinstance(c, ProcessClient):
        c.verify(host.proc)            # a dry run, too, never "acts" on a reused PID
    return _apply(host, c, a, topo, ctx, None)


def _apply(host: ActionIo, c: Tracked, a: Action, topo: Topology, ctx: Ctx,
           pin: Pinned | None) -> Result:
    alive = pin.check if pin is not None else None
    src_id = topo.node_ids[a.src] if a.src >= 0 else None
    dst_id = topo.node_ids[a.dst]
    note = "dry-run" if host.dry_run else ""
    if isinstance(a, SetHome):
        cpus = frozenset(topo.cpus[a.dst])
        if not cpus:
            return Result(a, False, f"node {dst_id} has no CPUs")
        if not host.dry_run:
            if isinstance(c, ProcessClient):
                affinity.set_process_home(c, cpus, host.proc, host.sys, alive)
            elif isinstance(c, CgroupClient):
                affinity.set_cgroup_home(c, cpus, host.proc, host.sys)
            host.keeper.dirty = True
            still_there(host, c, pin)
        if c.home != dst_id:
            c.home, c.home_since = dst_id, ctx.now
        return Result(a, True, note, target=target(c))
    if isinstance(a, MigratePages):
        if host.dry_run or src_id is None:
            return Result(a, True, note, target=target(c))
        bulk = host.bulk
        if isinstance(c, ProcessClient):
            r = migrate.migrate_process(c, src_id, dst_id, int(a.pages), ctx.now, bulk,
                                        host.proc, host.sys, alive)
        else:
            assert isinstance(c, CgroupClient)
            r = migrate.migrate_cgroup(c, src_id, dst_id, int(a.pages), bulk, host.proc,
                                       host.sys)
        host.stats.pages_moved += r.moved
        host.stats.pages_failed += r.failed
        still_there(host, c, pin)
        if r.error is not None:
            # Pages moved before the failing call are real and accounted above; the
            # error is sorted like any other: not permitted -> unmanaged for good,
            # anything else -> logged once, back-off.
            if isinstance(r.error, AccessDenied):
                raise r.error
            host.failed(c, c.key, ctx.now, type(r.error).__name__, r.error)
            return Result(a, False, str(r.error), r.moved, target=target(c))
        return Result(a, True, "", r.moved, target=target(c))
    return Result(a, False, f"unknown action {type(a).__name__}")


def home_changes(host: ActionIo, actions: list[Action], by_id: dict[str, Tracked],
                 topo: Topology, now: float) -> list[tuple[Tracked, Cpus]]:
    """The home changes about to be made (for the state file's write-ahead)."""
    out = []
    for a in actions:
        c = by_id.get(a.client)
        if isinstance(a, SetHome) and c is not None and c.managed and \
                0 <= a.dst < topo.n and topo.cpus[a.dst] and \
                not host.cooling(c.key, now):
            out.append((c, frozenset(topo.cpus[a.dst])))
    return out


def still_there(host: ActionIo, c: Tracked, pin: Pinned | None) -> None:
    """After the calls: the process still lives, or it exited during them (ProcessGone,
    the client is dropped).  If its PID already belongs to a new process, that is
    counted and logged: every call was made right after checking that the client itself
    was alive, so only the microseconds between a check and its call were exposed."""
    if pin is None:
        return
    try:
        pin.check()
    except ProcessGone:
        try:
            assert isinstance(c, ProcessClient)
            c.verify(host.proc)
        except ProcessGone as e:
            if "reused" in str(e):
                host.stats.reused_during_action += 1
                log.warning("pid %d exited during an action on %s and was reused at once "
                            "(%s); each call had checked that %s was still alive",
                            c.pid, c.name, e, c.name)
            raise
        raise
