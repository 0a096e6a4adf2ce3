"""Runtime control of a running daemon, as numad's ``-p``/``-x`` and a SIGHUP reload.

Requests arrive on other threads (the status API, a signal handler); they are queued
here and carried out by the control loop's own thread at the start of the next tick
(``ControlledHost.snapshot``), so the host is never touched by two threads at once.

* ``include(pid)``: manage the process from the next tick on, as if it were listed in
  ``processes.pids`` (also a process an exclude rule or an earlier exclude left out).
* ``exclude(pid)``: stop managing it (its CPU affinity is put back) and leave it alone
  while it lives.
* ``reload()`` (SIGHUP): read the config file again and take its client rules
  (``[processes]``, ``[cgroups]``, ``[[groups]]``, ``[[constraints]]``).  A bad file is
  logged in one line and the running rules stay.  What a restart alone can change
  (``[daemon]``, ``[settings]``) is logged as such.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from homenode.errors import HomenodeError, InputError

log = logging.getLogger("homenode.control")


class Control:
    def __init__(self, load_config: Callable[[], Any]):
        self.load_config = load_config
        self._lock = threading.Lock()
        self._queue: list[tuple[str, int]] = []
        self._reload = False
        self.included: set[int] = set()     # kept across reloads

    # --- from any thread -----------------------------------------------------------

    def request(self, op: str, pid: Any) -> dict[str, Any]:
        """Queue ``include``/``exclude`` of ``pid``; the answer of the API request."""
        if op not in ("include", "exclude"):
            raise InputError("request.get", op, "expected include or exclude")
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 1:
            raise InputError("request.pid", pid, "expected a process id above 1")
        with self._lock:
            self._queue.append((op, pid))
        return {"queued": op, "pid": pid}

    def reload(self) -> None:
        """Safe in a signal handler: it only sets a flag."""
        self._reload = True

    # --- from the control loop's thread ----------------------------------------------

    def apply(self, host: Any) -> None:
        with self._lock:
            queue, self._queue = self._queue, []
        if self._reload:
            self._reload = False
            self._do_reload(host)
        for op, pid in queue:
            if op == "include":
                self.included.add(pid)
                host.include(pid)
                log.info("include pid %d: managed from this tick on", pid, extra={"pid": pid})
            else:
                self.included.discard(pid)
                names = host.release(pid)
                log.info("exclude pid %d: %s", pid, ", ".join(names) + " released" if names
                         else "not managed now; it will not be picked up",
                         extra={"pid": pid})

    def _do_reload(self, host: Any) -> None:
        try:
            cfg = self.load_config()
        except HomenodeError as e:
            log.error("reload refused, the running config stays: %s", e)
            return
        old = host.cfg
        host.reload(cfg, self.included)
        later = [name for name, a, b in (("[daemon]", old.daemon, cfg.daemon),
                                         ("[settings]", old.settings, cfg.settings)) if a != b]
        log.info("reloaded %s: client rules applied to the next scan%s", cfg.source,
                 f"; {' and '.join(later)} changed: they apply after a restart" if later
                 else "")


class ControlledHost:
    """The host the loop drives, with the queued control requests carried out first."""

    def __init__(self, host: Any, control: Control):
        self._host = host
        self._control = control

    def snapshot(self) -> Any:
        self._control.apply(self._host)
        return self._host.snapshot()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._host, name)


def config_loader(path: Path | None) -> Callable[[], Any]:
    def load() -> Any:
        from homenode.linux import config
        return config.load(path)
    return load
