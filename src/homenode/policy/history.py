"""Per-client memory a policy keeps between snapshots, aligned to each snapshot's clients.

Hosts reuse one ``clients`` tuple while the set of clients is unchanged, so realigning
(a dict lookup per client) happens only when clients come or go.
"""

from __future__ import annotations

import math

import numpy as np


class Aligned:
    """Rows of per-client values that follow clients across snapshots by id."""

    def __init__(self, width: int, fill: float):
        self.width, self.fill = width, fill
        self._clients: tuple = ()
        self._ids: dict[str, int] = {}
        self.data = np.zeros((width, 0))

    def align(self, clients: tuple) -> np.ndarray:
        if clients is not self._clients:
            new = np.full((self.width, len(clients)), self.fill)
            for j, c in enumerate(clients):
                k = self._ids.get(c.id)
                if k is not None:
                    new[:, j] = self.data[:, k]
            self.data = new
            self._clients = clients
            self._ids = {c.id: j for j, c in enumerate(clients)}
        return self.data


class PeakTracker:
    """Each client's peak demand over the last ``window`` seconds (sampled per period)."""

    def __init__(self, window: float, period: float):
        self.slots = max(1, math.ceil(window / period)) if window > 0 else 1
        self._rows = Aligned(self.slots, 0.0)
        self._pos = 0
        self.seen = 0

    @property
    def ready(self) -> bool:
        """Whether a whole window has been observed (before that, peaks are guesses)."""
        return self.seen >= self.slots

    def update(self, clients: tuple, demand: np.ndarray) -> np.ndarray:
        buf = self._rows.align(clients)
        buf[self._pos] = demand
        self._pos = (self._pos + 1) % self.slots
        self.seen += 1
        return np.maximum(buf.max(axis=0), demand)


class Counter:
    """A per-client count (periods owed CPU, time of last swap, ...)."""

    def __init__(self, fill: float = 0.0):
        self._rows = Aligned(1, fill)

    def get(self, clients: tuple) -> np.ndarray:
        return self._rows.align(clients)[0]


class Smoother:
    """Exponential moving average of each client's demand (time constant ``tau``)."""

    def __init__(self, tau: float):
        self.tau = tau
        self._rows = Aligned(1, math.nan)
        self._last: float | None = None

    def update(self, clients: tuple, demand: np.ndarray, now: float) -> np.ndarray:
        row = self._rows.align(clients)[0]
        if self.tau <= 0:
            row[:] = demand
            return row
        dt = 0.0 if self._last is None else max(now - self._last, 0.0)
        self._last = now
        alpha = 1.0 - math.exp(-dt / self.tau)
        fresh = np.isnan(row)
        row[:] = np.where(fresh, demand, row + alpha * (demand - row))
        return row


class ChangeTimes:
    """The times of each client's last ``n`` home changes, oldest first."""

    def __init__(self, n: int):
        self.n = max(n, 1)
        self._rows = Aligned(self.n, -math.inf)

    def oldest(self, clients: tuple) -> np.ndarray:
        """Per client: the n-th last change (-inf while it has had fewer)."""
        return self._rows.align(clients)[0].copy()

    def record(self, clients: tuple, idx: list[int], now: float) -> None:
        rows = self._rows.align(clients)
        for i in idx:
            rows[:-1, i] = rows[1:, i].copy()
            rows[-1, i] = now
