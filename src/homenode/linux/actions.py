"""Carrying out one policy action on one client: the host's actuation.

The client's kind (homenode.linux.kinds) holds a process by a pidfd for the whole action
and checks it is alive right before every call (homenode.linux.kernel.identity), so a reused
PID is never acted on; a process that exits during the action is dropped, and one whose
PID is reused at once is counted.  Pages moved before a failing call are accounted
before the error is reported.  Nothing here decides: the policy did.
"""

from __future__ import annotations

from homenode.linux.actions_io import ActionIo, HostStats
from homenode.linux.clients import Ctx, Tracked
from homenode.linux.kernel.errors import AccessDenied
from homenode.linux.kinds import kind_of
from homenode.linux.state import Cpus
from homenode.model import Action, ActionResult, MigratePages, SetHome, Topology

__all__ = ["ActionIo", "HostStats", "Result", "apply_one", "home_changes", "target"]


def Result(action: Action, ok: bool, note: str = "", moved: int = 0,
           target: str = "") -> ActionResult:
    """The one typed result of every host (homenode.model.ActionResult); Linux counts
    the pages it moves, so ``moved`` is never None here."""
    return ActionResult(action, ok, note, moved, target)


def target(c: Tracked) -> str:
    """The process acted on, as PID@start time (for the action log and audits)."""
    return kind_of(c).target(c)


def apply_one(io: ActionIo, c: Tracked, a: Action, topo: Topology, ctx: Ctx) -> ActionResult:
    if not c.managed:
        return Result(a, False, f"unmanaged: {c.why_unmanaged}")
    kind = kind_of(c)
    with kind.acting(c, io) as alive:
        return _apply(io, c, a, topo, ctx, alive)


def _apply(io: ActionIo, c: Tracked, a: Action, topo: Topology, ctx: Ctx,
           alive) -> ActionResult:
    kind = kind_of(c)
    src_id = topo.node_ids[a.src] if a.src >= 0 else None
    dst_id = topo.node_ids[a.dst]
    note = "dry-run" if io.dry_run else ""
    if isinstance(a, SetHome):
        cpus = frozenset(topo.cpus[a.dst])
        if not cpus:
            return Result(a, False, f"node {dst_id} has no CPUs")
        if not io.dry_run:
            kind.set_home(c, cpus, io, alive)
            io.keeper.dirty = True
            kind.after(c, io, alive)
        if c.home != dst_id:
            c.home, c.home_since = dst_id, ctx.now
        return Result(a, True, note, target=kind.target(c))
    if isinstance(a, MigratePages):
        if io.dry_run or src_id is None:
            return Result(a, True, note, target=kind.target(c))
        if kind.queue(c, src_id, dst_id, int(a.pages), ctx.now, io):   # off the loop
            return Result(a, True, "queued", target=kind.target(c))
        r = kind.migrate(c, src_id, dst_id, int(a.pages), ctx.now, io, alive)
        io.stats.pages_moved += r.moved
        io.stats.pages_failed += r.failed
        kind.after(c, io, alive)
        if r.error is not None:
            # Pages moved before the failing call are real and accounted above; the
            # error is sorted like any other: not permitted -> unmanaged for good,
            # anything else -> logged once, back-off.
            if isinstance(r.error, AccessDenied):
                raise r.error
            io.failed(c, c.key, ctx.now, type(r.error).__name__, r.error)
            return Result(a, False, str(r.error), r.moved, target=kind.target(c))
        return Result(a, True, "", r.moved, target=kind.target(c))
    return Result(a, False, f"unknown action {type(a).__name__}")


def home_changes(io: ActionIo, actions: list[Action], by_id: dict[str, Tracked],
                 topo: Topology, now: float) -> list[tuple[Tracked, Cpus]]:
    """The home changes about to be made (for the state file's write-ahead)."""
    out = []
    for a in actions:
        c = by_id.get(a.client)
        if isinstance(a, SetHome) and c is not None and c.managed and \
                0 <= a.dst < topo.n and topo.cpus[a.dst] and \
                not io.cooling(c.key, now):
            out.append((c, frozenset(topo.cpus[a.dst])))
    return out
