"""Errors per client: each (client, kind of error) logged once, and a back-off.

A client whose refresh or action failed for a reason other than its exit (busy,
short of memory, an I/O error, a malformed kernel file...) is left alone -- neither
re-read nor acted on -- for a while: BACKOFF_MIN_S after the first failure, twice as
long after each further one, at most BACKOFF_MAX_S.  A client that stays free of
errors for as long as its last back-off starts again from BACKOFF_MIN_S.  So a
persistent fault costs one attempt per back-off period, not one per tick, and one log
line, not one per tick.

``ClientGuard.run`` sorts every error of one client's refresh or action: gone -> dropped,
not permitted -> unmanaged for good, anything else -> logged once and backed off; a bug
never stops the tick for the other clients.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from homenode.linux.actions_io import KernelIo
from homenode.linux.clients import Tracked
from homenode.linux.kernel.errors import AccessDenied, ParseError, ProcessGone, SysError
from homenode.linux.kinds import kind_of

if TYPE_CHECKING:
    from homenode.linux.adopt import Keeper
    from homenode.linux.roster import Roster

# First back-off: with the default 2 s tick, the failed action is retried on the next
# tick (as docs/linux.md promises for EBUSY/ENOMEM); with shorter ticks, a few ticks on.
BACKOFF_MIN_S = 1.0
# Longest back-off: a client that keeps failing is retried once a minute.
BACKOFF_MAX_S = 60.0
# Host-wide problems (reading the topology, listing /proc) are logged under this key.
HOST = "host"


@dataclass
class Backoff:
    until: float     # no refresh or action before this (host clock, s)
    delay: float     # the back-off that was applied


class Guard:
    """Log-once bookkeeping and back-off state, both forgotten when a client goes."""

    def __init__(self, log: logging.Logger, errors: Counter):
        self.log = log
        self.errors = errors                          # kind -> count (summary.json)
        self._warned: dict[str, set[str]] = {}        # client id -> kinds logged
        self._backoff: dict[object, Backoff] = {}     # client key -> its back-off

    def warn_once(self, key: str, kind: str, message: str) -> None:
        """Count the error; log it only the first time for this (client id, kind)."""
        self.errors[kind] += 1
        kinds = self._warned.setdefault(key, set())
        if kind not in kinds:
            kinds.add(kind)
            self.log.warning("%s", message)

    def warned(self, key: str, kind: str) -> bool:
        return kind in self._warned.get(key, ())

    def failed(self, key: object, now: float) -> float:
        """Start or lengthen the back-off of ``key``; returns its length (s)."""
        b = self._backoff.get(key)
        if b is None or now > b.until + b.delay:      # quiet for a whole period: anew
            delay = BACKOFF_MIN_S
        else:
            delay = min(BACKOFF_MAX_S, 2.0 * b.delay)
        self._backoff[key] = Backoff(now + delay, delay)
        return delay

    def cooling(self, key: object, now: float) -> float:
        """Seconds left in ``key``'s back-off (0: free to go)."""
        b = self._backoff.get(key)
        return max(0.0, b.until - now) if b is not None else 0.0

    def forget(self, key: object, cid: str) -> None:
        """The client is gone: a new process given the same id starts with a clean slate
        (and the bookkeeping does not grow with every process that ever came and went)."""
        self._backoff.pop(key, None)
        self._warned.pop(cid, None)

    def sizes(self) -> tuple[int, int]:
        """(clients with logged errors, clients backing off): for the soak's leak check."""
        return len(self._warned), len(self._backoff)


class ClientGuard:
    """Runs one client's refresh or action and sorts its errors."""

    def __init__(self, guard: Guard, roster: Roster, keeper: Keeper, io: KernelIo,
                 now: Callable[[], float], log: logging.Logger):
        self.guard, self.roster, self.keeper, self.io = guard, roster, keeper, io
        self.now, self.log = now, log

    def run(self, c: Tracked, key: object, fn: Callable[[], Any],
            on_error: Callable[[Exception], Any] | None = None) -> Any:
        """``fn()``, or -- on an error -- ``on_error(e)`` once the error is sorted."""
        now = self.now()
        try:
            return fn()
        except ProcessGone as e:
            if kind_of(c).still_there(c, self.io):
                # ESRCH/ENOENT from one call (a thread, a file) while the process itself
                # lives on: dropping it would lose homenode's bookkeeping of it.
                self.failed(c, key, now, "ProcessGone", e)
                self._check_settled(c)
            else:
                self.roster.drop(key)
                self.log.info("client %s (%s) gone: %s", c.name, c.id, e)
            err: Exception = e
        except AccessDenied as e:
            if c.managed:
                c.unmanage(f"not permitted: {e}")
                self.keeper.dirty = True
            self.guard.warn_once(c.id, type(e).__name__,
                                 f"{c.name} ({c.id}): {e}; left unmanaged")
            err = e
        except (SysError, ParseError) as e:
            self.failed(c, key, now, type(e).__name__, e)
            self._check_settled(c)
            err = e
        except Exception as e:   # a bug must not stop the tick for every other client
            if not self.guard.warned(c.id, "internal"):
                self.log.exception("internal error on %s (%s)", c.name, c.id)
            self.failed(c, key, now, "internal", e)
            self._check_settled(c)
            err = e
        return on_error(err) if on_error else None

    def failed(self, c: Tracked, key: object, now: float, kind: str, e: Exception) -> None:
        delay = self.guard.failed(key, now)
        self.guard.warn_once(c.id, kind, f"{c.name} ({c.id}): {e}; backing off {delay:g} s "
                                         f"(further {kind} errors of this client not logged)")

    def _check_settled(self, c: Tracked) -> None:
        """After an error the threads' masks may disagree with the bookkeeping (an
        affinity change failed half-way and so did its put-back): if so, they are
        repaired at the client's next refresh.  Costs a few calls, on errors only."""
        if c.key in self.roster.unsettled or c.key not in self.roster or not c.managed:
            return
        try:
            ok = kind_of(c).settled(c, self.io)
        except SysError:
            return
        if not ok:
            self.roster.unsettled.add(c.key)
