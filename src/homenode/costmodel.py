"""The arithmetic of what memory placement and CPU sharing cost, as pure functions.

The simulator runs a host on it and the policy weighs moves with it, so the two agree
on what a remote page or a crowded node costs:

* a client whose memory sits at mean latency ratio ``lat`` (1 = all local) does
  ``memory_efficiency(intensity, lat)`` of the work per CPU-second it would do with all
  memory local (``intensity`` = the share of its time spent on memory accesses);
* a node asked for ``want`` cores delivers ``min(want, cores)``: shares decide *who*
  gets the CPU, not how much is done in all;
* latency grows with SLIT distance through a table of (distance, ratio) points,
  linear between them and beyond the last two (``latency_ratio``).
"""

from __future__ import annotations

import math

import numpy as np

# (SLIT distance, latency ratio): local 1.0, and 1.6 x at the usual remote socket
# distance of 21 -- the figure the simulator's hosts use unless a scenario says otherwise.
DEFAULT_SLIT_LATENCY = ((10, 1.0), (21, 1.6))


def memory_efficiency(intensity: np.ndarray | float, lat: np.ndarray | float) -> np.ndarray:
    """Work per CPU-second relative to all-local memory."""
    return 1.0 / ((1.0 - np.asarray(intensity)) + np.asarray(intensity) * np.asarray(lat))


def latency_ratio(distance: np.ndarray, table: tuple[tuple[float, float], ...]
                  = DEFAULT_SLIT_LATENCY) -> np.ndarray:
    """Latency ratio for each SLIT distance: piecewise linear through ``table``'s points,
    extended past its ends by its first and last segments."""
    pts = sorted(table)
    d = np.asarray(distance, float)
    xs = np.array([p[0] for p in pts], float)
    ys = np.array([p[1] for p in pts], float)
    if xs.size == 1:
        return np.full(d.shape, ys[0])
    out = np.interp(d, xs, ys)
    lo = (ys[1] - ys[0]) / (xs[1] - xs[0])
    hi = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
    out = np.where(d < xs[0], ys[0] + lo * (d - xs[0]), out)
    return np.where(d > xs[-1], ys[-1] + hi * (d - xs[-1]), out)


def parse_slit_latency(text: str) -> tuple[tuple[float, float], ...]:
    """``"10:1.0,21:1.6"`` into a table; raises ValueError naming the bad item."""
    out = []
    for item in text.split(","):
        dist, sep, ratio = item.strip().partition(":")
        try:
            d, r = float(dist), float(ratio)
        except ValueError:
            raise ValueError(f"{item.strip()!r} is not DISTANCE:RATIO") from None
        if not sep or d < 10 or r < 1.0 or not math.isfinite(d + r):
            raise ValueError(f"{item.strip()!r}: distance must be >= 10 and ratio >= 1")
        out.append((d, r))
    if not out or len({d for d, _ in out}) != len(out):
        raise ValueError("needs at least one point and one ratio per distance")
    return tuple(sorted(out))


def delivered(want: np.ndarray, cores: np.ndarray) -> np.ndarray:
    """CPU a node delivers in all when its clients want ``want`` cores."""
    return np.minimum(np.maximum(want, 0.0), cores)


def expected_delivered(want: np.ndarray, sd: np.ndarray, cores: np.ndarray) -> np.ndarray:
    """E[min(W, cores)] for a node demand W ~ Normal(want, sd): a node that is busy only
    at its peaks still loses CPU at them."""
    sd = np.maximum(sd, 1e-9)
    z = (cores - want) / sd
    phi = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    over = sd * (phi - z * (1.0 - normal_cdf(z)))     # E[(W - cores)+]
    return np.maximum(want, 0.0) - np.maximum(over, 0.0)


def normal_cdf(z: np.ndarray) -> np.ndarray:
    """Standard normal CDF (Abramowitz-Stegun 7.1.26, |error| < 1.5e-7)."""
    x = np.abs(z) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741
                                                       + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-x * x)
    return 0.5 * (1.0 + np.sign(z) * erf)


def remote_seconds(remote_frac: np.ndarray, pages: np.ndarray, rate: float, knee: float,
                   floor: float, delay: float) -> np.ndarray:
    """Integral of the remote fraction over the copy (seconds x fraction), and the copy's
    duration, when ``remote_frac`` of ``pages`` follow the client at ``rate`` pages/s
    slowed below ``knee`` in proportion, to ``floor`` of the rate, after ``delay`` s.

    Returns (integral, duration), each an array like ``remote_frac``."""
    x0 = np.asarray(remote_frac, float)
    p = np.maximum(np.asarray(pages, float), 1.0)
    if rate <= 0:
        return np.where(x0 > 0, np.inf, 0.0), np.where(x0 > 0, np.inf, 0.0)
    tp = p / rate                                   # s to copy all pages at full rate
    k = min(max(knee, 0.0), 1.0)
    m = min(max(floor, 1e-6), 1.0)
    if k <= 0:
        return x0 * delay + 0.5 * x0 * x0 * tp, delay + x0 * tp
    above = np.maximum(x0 - k, 0.0)
    start = np.minimum(x0, k)                      # where the slow-down starts
    # above the knee: linear; in it: exponential down to floor*knee; then linear again
    integral = 0.5 * (x0 * x0 - start * start) * tp
    t_above = above * tp
    xk = np.minimum(start, m * k)
    exp_part = np.maximum(start - xk, 0.0) * k * tp
    t_exp = np.where(start > xk, k * tp * np.log(np.maximum(start, 1e-12) / np.maximum(xk, 1e-12)),
                     0.0)
    tail = 0.5 * xk * xk * tp / m
    t_tail = xk * tp / m
    total = x0 * delay + integral + exp_part + tail
    duration = np.where(x0 > 0, delay + t_above + t_exp + t_tail, 0.0)
    return total, duration
