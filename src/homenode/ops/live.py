"""`homenode simulate --live`: serve the status API (and optionally the exporter) while a
simulation runs, paced to a wall-clock speed so that `homenode top` can watch it.

The simulation itself is unchanged: the status recorder rides beside the run's own
recorder (``simulate(recorder=...)``), and pacing happens in the loop's ``on_tick``
hook, which sleeps until ``t / speed`` wall seconds have passed since the start.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from homenode.errors import InputError
from homenode.ops.api import StatusServer, serve_status
from homenode.ops.exporter import Exporter, parse_addr, start_exporter
from homenode.ops.status import StatusRecorder
from homenode.settings import Settings
from homenode.settings import profile as settings_profile
from homenode.sim.scenario import Scenario

LIVE_SPEED = 10.0   # default simulated seconds per wall second under --live


class LiveRun:
    """The live servers of one simulation; ``close()`` stops them."""

    def __init__(self, sc: Scenario, policy: str, *, overrides: dict[str, Any] | None = None,
                 profile: str | None = None, socket_path: Path | None = None,
                 speed: float = LIVE_SPEED, metrics_addr: str | None = None):
        if not speed > 0:
            raise InputError("--speed", speed, "must be positive (simulated seconds per "
                             "wall second)")
        # The settings the simulation will run with, composed as ``simulate`` does, so
        # that `explain` quotes the values in force.
        base = settings_profile(profile) if profile else Settings()
        cfg = Settings.from_mapping(sc.settings, where=sc.source, base=base)
        if overrides:
            cfg = Settings.from_mapping(overrides, base=cfg)
        if metrics_addr:
            parse_addr(metrics_addr)        # a bad address fails before anything starts
        self.speed = speed
        self.recorder = StatusRecorder(sc.host.topology, source="simulation", policy=policy,
                                       scenario=sc.name, settings=cfg)
        self.server: StatusServer = serve_status(self.recorder, socket_path)
        self.exporter: Exporter | None = None
        try:
            if metrics_addr:
                self.exporter = start_exporter(self.recorder, metrics_addr)
        except BaseException:
            self.server.close()
            raise
        self._wall0: float | None = None
        # SIGTERM unwinds like Ctrl-C, through close(), so the socket does not outlive us.
        self._old_term = signal.signal(signal.SIGTERM, _terminated) \
            if _in_main_thread() else None
        msg = f"status API on {self.server.path}"
        if self.exporter is not None:
            msg += f", metrics at {self.exporter.url}"
        print(f"homenode: {msg}", file=sys.stderr, flush=True)

    def on_tick(self, then: Callable[[float], None] | None = None) -> Callable[[float], None]:
        """The loop's ``on_tick``: wait for the wall clock, then call ``then``."""
        def tick(t: float) -> None:
            if self._wall0 is None:
                self._wall0 = time.monotonic() - t / self.speed
            delay = self._wall0 + t / self.speed - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            # The next tick's duration is timed from here: advancing the simulated host,
            # snapshot, decide, apply.
            self.recorder.tick_started()
            if then is not None:
                then(t)
        return tick

    def close(self) -> None:
        if self.exporter is not None:
            self.exporter.close()
        self.server.close()
        if self._old_term is not None:
            signal.signal(signal.SIGTERM, self._old_term)
            self._old_term = None

    def __enter__(self) -> LiveRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


EXIT_TERMINATED = 128 + signal.SIGTERM


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(EXIT_TERMINATED)


def _in_main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


class NotLive:
    """Stands in for ``LiveRun`` when --live is off: no pacing, no extra recorder."""

    recorder = None

    def on_tick(self, then: Callable[[float], None] | None = None
                ) -> Callable[[float], None] | None:
        return then

    def __enter__(self) -> NotLive:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def start_live(live: bool, sc: Scenario, policy: str, *, overrides: dict[str, Any],
               socket_path: Path | None, speed: float, metrics_addr: str | None,
               profile: str | None = None) -> LiveRun | NotLive:
    """The live servers if ``live``, else a no-op; options that need --live say so."""
    if not live:
        for name, value, default in (("--socket", socket_path, None),
                                     ("--metrics", metrics_addr, None),
                                     ("--speed", speed, LIVE_SPEED)):
            if value != default:
                raise InputError(name, str(value), "only applies with --live")
        return NotLive()
    return LiveRun(sc, policy, overrides=overrides, profile=profile, socket_path=socket_path,
                   speed=speed, metrics_addr=metrics_addr)
