"""CPU demand curves, evaluated for every client at once.

A curve is one of: ``constant`` (cpu), ``step`` (cpu, then ``to`` from time ``at``),
``periodic`` (cpu + amplitude * sin(2 pi t / period + phase)), ``random_walk`` (starts at
cpu, moves by ``sigma`` cores per sqrt(second), kept within [min, max]) and ``trace``
(a list of values, one per ``step`` seconds, the last one held).  Values are in cores,
clipped at 0; the host caps them at the client's vCPUs and limit.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

KINDS = ("constant", "step", "periodic", "random_walk", "trace")


@dataclass(frozen=True)
class Curve:
    kind: str = "constant"
    cpu: float = 1.0
    to: float = 0.0
    at: float = math.inf
    amplitude: float = 0.0
    period: float = 60.0
    phase: float = 0.0
    sigma: float = 0.0
    lo: float = 0.0
    hi: float = math.inf
    values: tuple[float, ...] = ()
    step: float = 300.0
    real_step: float = 0.0        # trace: seconds of real time per value (0: not a trace)

    def scaled(self, f: float) -> Curve:
        """The same shape at ``f`` times the level (one slice of a wide VM)."""
        return dataclasses.replace(
            self, cpu=self.cpu * f, to=self.to * f, amplitude=self.amplitude * f,
            sigma=self.sigma * f, lo=self.lo * f, hi=self.hi * f,
            values=tuple(x * f for x in self.values))


class DemandTable:
    """Vectorised demand of ``n`` client slots; a row is re-encoded when a curve changes."""

    def __init__(self, n: int, rng: np.random.Generator):
        self.rng = rng
        self.base = np.zeros(n)
        self.amp = np.zeros(n)
        self.omega = np.zeros(n)
        self.phase = np.zeros(n)
        self.step_at = np.full(n, np.inf)
        self.step_to = np.zeros(n)
        self.rw = np.zeros(n, bool)
        self.rw_sigma = np.zeros(n)
        self.rw_lo = np.zeros(n)
        self.rw_hi = np.full(n, np.inf)
        self.trace_row = np.full(n, -1, np.int64)
        self.trace_step = np.ones(n)
        self._traces: list[np.ndarray] = []
        self._trace_mat = np.zeros((0, 1))
        self._trace_len = np.zeros(0, np.int64)
        self.any_periodic = self.any_rw = self.any_trace = False

    def set(self, i: int, c: Curve) -> None:
        self.base[i] = c.cpu
        self.amp[i] = c.amplitude if c.kind == "periodic" else 0.0
        self.omega[i] = 2 * math.pi / c.period if c.kind == "periodic" else 0.0
        self.phase[i] = c.phase
        self.step_at[i] = c.at if c.kind == "step" else math.inf
        self.step_to[i] = c.to
        self.rw[i] = c.kind == "random_walk"
        self.rw_sigma[i] = c.sigma
        self.rw_lo[i], self.rw_hi[i] = c.lo, c.hi
        self.trace_row[i] = -1
        if c.kind == "trace":
            self.trace_row[i] = len(self._traces)
            self.trace_step[i] = c.step
            self._traces.append(np.asarray(c.values, float))
            width = max(len(t) for t in self._traces)
            self._trace_mat = np.array([np.pad(t, (0, width - len(t)), mode="edge")
                                        for t in self._traces])
            self._trace_len = np.array([len(t) for t in self._traces], np.int64)
        self.any_periodic = bool(self.amp.any())
        self.any_rw = bool(self.rw.any())
        self.any_trace = bool((self.trace_row >= 0).any())

    def value(self, t: float, dt: float) -> np.ndarray:
        """Demand of every slot at time t; random walks advance by dt."""
        if self.any_rw:
            step = self.rng.standard_normal(self.base.size) * self.rw_sigma * math.sqrt(dt)
            self.base = np.where(self.rw, np.clip(self.base + step, self.rw_lo, self.rw_hi),
                                 self.base)
        d = self.base
        if self.any_periodic:
            d = d + self.amp * np.sin(self.omega * t + self.phase)
        d = np.where(t >= self.step_at, self.step_to, d)
        if self.any_trace:
            has = self.trace_row >= 0
            row = np.maximum(self.trace_row, 0)
            k = np.minimum((t / self.trace_step).astype(np.int64), self._trace_len[row] - 1)
            d = np.where(has, self._trace_mat[row, k], d)
        return np.maximum(d, 0.0)
