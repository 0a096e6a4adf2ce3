"""A background thread that samples the workers and the machine at a fixed period.

Each sample is the plain dict :mod:`homenode_qemu.analysis` reads.  Reading numa_maps
walks the page tables, which costs the guest CPU time (tens of ms for a few hundred MiB
under TCG); that cost is the same whichever balancer runs, and the period is a parameter.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from homenode_qemu.guest import observe
from homenode_qemu.guest.procs import Worker

SAMPLE_S = 0.5


class Sampler:
    def __init__(self, period: float = SAMPLE_S) -> None:
        self.period = period
        self.samples: list[dict[str, Any]] = []
        self.t0 = time.monotonic()
        self._workers: dict[int, Worker] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def track(self, *workers: Worker) -> None:
        with self._lock:
            for w in workers:
                self._workers[w.pid] = w

    def untrack(self, *workers: Worker) -> None:
        with self._lock:
            for w in workers:
                self._workers.pop(w.pid, None)

    def start(self, t0: float | None = None) -> Sampler:
        """Start sampling; sample times are seconds since ``t0`` (default: now)."""
        self.t0 = time.monotonic() if t0 is None else t0
        self._thread.start()
        return self

    def stop(self) -> list[dict[str, Any]]:
        self._stop.set()
        self._thread.join()
        return self.samples

    def sample(self) -> dict[str, Any]:
        t = time.monotonic() - self.t0
        with self._lock:
            workers = list(self._workers.values())
        ws = {}
        for w in workers:
            try:
                mine, _ = observe.numa_maps(w.pid, w.addr)
                st = observe.proc_stat(w.pid)
            except (OSError, ValueError, IndexError):
                continue        # exited between the list and the read
            ws[str(w.pid)] = {"cpu": st.cpu, "tag": w.tag,
                              "pages": {str(n): c for n, c in sorted(mine.items())},
                              "stime": st.stime_s, "utime": st.utime_s}
        return {"t": round(t, 3), "w": ws,
                "busy": {str(c): j for c, j in observe.cpu_busy().items()},
                "vm": observe.vmstat()}

    def _loop(self) -> None:
        nxt = time.monotonic()
        while not self._stop.is_set():
            self.samples.append(self.sample())
            nxt += self.period
            self._stop.wait(max(0.0, nxt - time.monotonic()))
        self.samples.append(self.sample())
