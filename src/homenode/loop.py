"""The one control loop, for the simulated and the real host alike.

    while not stopped:
        snapshot -> policy.decide -> host.apply -> record
        sleep until the next tick, or until the host says the workload changes

The clock and the host are injected: ``SimClock`` advances the simulator, ``RealClock``
sleeps on a ``threading.Event`` so SIGTERM ends the wait at once.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

from homenode.model import Action, ActionResult, Decision, Snapshot
from homenode.policy.base import Policy


class Host(Protocol):
    def snapshot(self) -> Snapshot: ...

    def apply(self, actions: list[Action]) -> list[ActionResult]: ...

    def next_wakeup(self) -> float | None: ...


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep_until(self, t: float) -> None: ...


class RealClock:
    """Monotonic seconds since start; ``stop`` interrupts a sleep."""

    def __init__(self, stop: threading.Event | None = None):
        self.stop = stop or threading.Event()
        self._t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._t0

    def sleep_until(self, t: float) -> None:
        self.stop.wait(max(0.0, t - self.now()))


class Recorder(Protocol):
    def decision(self, snap: Snapshot, decision: Decision, applied: list[ActionResult]) -> None: ...

    def sample(self, snap: Snapshot) -> None: ...


class Tee:
    """Several recorders fed as one (the run's metrics, the status API, the exporter)."""

    def __init__(self, *recorders: Recorder):
        self.recorders = [r for r in recorders if r is not None]

    def decision(self, snap: Snapshot, decision: Decision, applied: list[ActionResult]) -> None:
        for r in self.recorders:
            r.decision(snap, decision, applied)

    def sample(self, snap: Snapshot) -> None:
        for r in self.recorders:
            r.sample(snap)


def run(host: Host, policy: Policy, clock: Clock, *, duration: float, interval: float,
        recorder: Recorder | None = None, stop: threading.Event | None = None,
        on_tick: Callable[[float], None] | None = None) -> int:
    """Run until ``duration`` has passed (or ``stop`` is set); returns ticks run.

    Samples are recorded on the regular tick grid; a wake-up for a workload change
    (a client starting) only decides and applies, so placement happens at once.
    """
    t0 = clock.now()
    end = t0 + duration if duration > 0 else math.inf
    next_tick = t0
    ticks = 0
    while not (stop is not None and stop.is_set()):
        now = clock.now()
        regular = now >= next_tick - 1e-9
        snap = host.snapshot()
        decision = policy.decide(snap)
        applied = host.apply(decision.actions) if decision.actions else []
        if recorder is not None:
            if decision.actions or decision.considered:
                recorder.decision(snap, decision, applied)
            if regular:
                recorder.sample(snap)
        if regular:
            ticks += 1
            while next_tick <= now + 1e-9:
                next_tick += interval
            if on_tick is not None:
                on_tick(now - t0)
        if now >= end - 1e-9:
            break
        wake = min(next_tick, end)
        hint = host.next_wakeup()
        if hint is not None and now + 1e-9 < hint < wake:
            wake = hint
        clock.sleep_until(wake)
    return ticks
